//! The ABI call trace: every callback the host made into the filter, in
//! order, so a test can check callback order the way Envoy calls them.

/// One callback the host called (e.g. `proxy_on_request_headers`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The export's name.
    pub callback: String,
    /// The context the callback ran for (0 for start-up calls).
    pub context_id: u32,
    /// The arguments, as the ABI passes them.
    pub args: Vec<i32>,
    /// What the callback returned, when it returns a value and did not fail.
    pub result: Option<i32>,
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let args: Vec<String> = self.args.iter().map(i32::to_string).collect();
        write!(f, "{}({})", self.callback, args.join(", "))?;
        if let Some(r) = self.result {
            write!(f, " -> {r}")?;
        }
        Ok(())
    }
}

/// Callback arguments as a list of ABI words.
pub(crate) trait TraceArgs {
    fn words(&self) -> Vec<i32>;
}

impl TraceArgs for () {
    fn words(&self) -> Vec<i32> {
        Vec::new()
    }
}

impl TraceArgs for i32 {
    fn words(&self) -> Vec<i32> {
        vec![*self]
    }
}

impl TraceArgs for (i32, i32) {
    fn words(&self) -> Vec<i32> {
        vec![self.0, self.1]
    }
}

impl TraceArgs for (i32, i32, i32) {
    fn words(&self) -> Vec<i32> {
        vec![self.0, self.1, self.2]
    }
}

impl TraceArgs for (i32, i32, i32, i32, i32) {
    fn words(&self) -> Vec<i32> {
        vec![self.0, self.1, self.2, self.3, self.4]
    }
}

/// A callback's result as an ABI word, when it has one.
pub(crate) trait TraceResult {
    fn word(&self) -> Option<i32>;
}

impl TraceResult for () {
    fn word(&self) -> Option<i32> {
        None
    }
}

impl TraceResult for i32 {
    fn word(&self) -> Option<i32> {
        Some(*self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_reads_like_the_abi() {
        let call = Call {
            callback: "proxy_on_request_headers".into(),
            context_id: 2,
            args: (2, 5, 1).words(),
            result: 0.word(),
        };
        assert_eq!(call.to_string(), "proxy_on_request_headers(2, 5, 1) -> 0");
    }
}
