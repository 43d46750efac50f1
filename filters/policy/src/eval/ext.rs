//! Cedar's extension values the evaluator supports: `ipaddr`, `datetime`
//! and `duration`, parsed once when policies are loaded, by the rules
//! Cedar's own constructors apply (a literal Cedar refuses is refused here
//! too; the compiler has already had Cedar check every literal).

use std::net::IpAddr;

use crate::view::days_from_civil;

/// An `ipaddr`: an address with its prefix length (32 or 128 for a single
/// address). Equal when both are, as in Cedar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IpNet {
    pub(crate) addr: IpAddr,
    pub(crate) prefix: u8,
}

impl IpNet {
    /// A single address.
    pub(crate) fn host(addr: IpAddr) -> Self {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Self { addr, prefix }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        if s.len() > 43 {
            return None;
        }
        // IPv4 embedded in IPv6 is refused, as Cedar does.
        if s.matches(':').count() >= 2 && s.matches('.').count() >= 2 {
            return None;
        }
        match s.split_once('/') {
            Some((addr, prefix)) => {
                let addr: IpAddr = addr.parse().ok()?;
                let (max, max_len) = if addr.is_ipv4() { (32, 2) } else { (128, 3) };
                if prefix.is_empty()
                    || prefix.len() > max_len
                    || !prefix.bytes().all(|b| b.is_ascii_digit())
                    || (prefix.starts_with('0') && prefix != "0")
                {
                    return None;
                }
                let prefix: u8 = prefix.parse().ok()?;
                (prefix <= max).then_some(Self { addr, prefix })
            }
            None => s.parse().ok().map(Self::host),
        }
    }

    pub(crate) fn is_loopback(&self) -> bool {
        self.addr.is_loopback() && self.prefix >= if self.addr.is_ipv4() { 8 } else { 128 }
    }

    pub(crate) fn is_multicast(&self) -> bool {
        self.addr.is_multicast() && self.prefix >= if self.addr.is_ipv4() { 4 } else { 8 }
    }

    /// Whether every address of `self` is in `other` (false across
    /// families).
    pub(crate) fn is_in_range(&self, other: &Self) -> bool {
        let (a, b, bits) = match (self.addr, other.addr) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                (u128::from(u32::from(a)), u128::from(u32::from(b)), 32)
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
            _ => return false,
        };
        let all: u128 = if bits == 32 {
            u128::from(u32::MAX)
        } else {
            u128::MAX
        };
        let net = |prefix: u8| all.checked_shl(u32::from(bits - prefix)).unwrap_or(0) & all;
        let host = |prefix: u8| all.checked_shr(u32::from(prefix)).unwrap_or(0) & all;
        let (self_net, other_net) = (a & net(self.prefix), b & net(other.prefix));
        let (self_end, other_end) = (a | host(self.prefix), b | host(other.prefix));
        other_net <= self_net && self_end <= other_end
    }
}

fn digits(s: &str, n: usize) -> Option<(i64, &str)> {
    let head = s.get(..n)?;
    if !head.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((head.parse().ok()?, s.get(n..)?))
}

/// A Cedar `datetime` literal as milliseconds since the Unix epoch:
/// `YYYY-MM-DD`, optionally `Thh:mm:ss`, then `Z`, `.SSSZ`, `(+|-)hhmm` or
/// `.SSS(+|-)hhmm`.
pub(crate) fn parse_datetime(s: &str) -> Option<i64> {
    let (y, rest) = digits(s, 4)?;
    let rest = rest.strip_prefix('-')?;
    let (m, rest) = digits(rest, 2)?;
    let rest = rest.strip_prefix('-')?;
    let (d, rest) = digits(rest, 2)?;
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    let day_ms = days_from_civil(y, m, d).checked_mul(86_400_000)?;
    if rest.is_empty() {
        return Some(day_ms);
    }
    let rest = rest.strip_prefix('T')?;
    let (h, rest) = digits(rest, 2)?;
    let rest = rest.strip_prefix(':')?;
    let (min, rest) = digits(rest, 2)?;
    let rest = rest.strip_prefix(':')?;
    let (sec, rest) = digits(rest, 2)?;
    let (ms, rest) = match rest.strip_prefix('.') {
        Some(r) => digits(r, 3)?,
        None => (0, rest),
    };
    let offset_s = match rest {
        "Z" => 0,
        _ => {
            let (sign, r) = match rest.as_bytes().first() {
                Some(b'+') => (1, rest.get(1..)?),
                Some(b'-') => (-1, rest.get(1..)?),
                _ => return None,
            };
            let (oh, r) = digits(r, 2)?;
            let (om, r) = digits(r, 2)?;
            if !r.is_empty() || oh >= 24 || om >= 60 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    if h >= 24 || min >= 60 || sec >= 60 {
        return None;
    }
    let time_ms = ((h * 60 + min) * 60 + sec) * 1000 + ms;
    day_ms.checked_add(time_ms)?.checked_sub(offset_s * 1000)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A Cedar `duration` literal as milliseconds: `-?(Nd)?(Nh)?(Nm)?(Ns)?(Nms)?`,
/// not empty, overflow refused.
pub(crate) fn parse_duration(s: &str) -> Option<i64> {
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    if rest.is_empty() {
        return None;
    }
    // Units in the order they must appear; each at most once.
    const UNITS: [(&str, i64); 5] = [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("ms", 1),
        ("m", 60_000),
        ("s", 1000),
    ];
    let order = |u: &str| match u {
        "d" => 0,
        "h" => 1,
        "m" => 2,
        "s" => 3,
        _ => 4,
    };
    let mut total: i64 = 0;
    let mut last: i32 = -1;
    while !rest.is_empty() {
        let end = rest.bytes().position(|b| !b.is_ascii_digit())?;
        if end == 0 {
            return None;
        }
        let (num, after) = rest.split_at(end);
        let (unit, mult) = UNITS.iter().find(|(u, _)| after.starts_with(u))?;
        let o = order(unit);
        if o <= last {
            return None;
        }
        last = o;
        let n: u64 = num.parse().ok()?;
        let n = i64::try_from(n).ok()?.checked_mul(*mult)?;
        total = if negative {
            total.checked_sub(n)?
        } else {
            total.checked_add(n)?
        };
        rest = after.get(unit.len()..)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ips() {
        let ip = |s| IpNet::parse(s);
        assert_eq!(ip("10.0.0.1").map(|i| i.prefix), Some(32));
        assert_eq!(ip("::1").map(|i| i.prefix), Some(128));
        assert!(ip("10.0.0.0/08").is_none());
        assert!(ip("10.0.0.0/33").is_none());
        assert!(ip("::ffff:1.2.3.4").is_none());
        assert!(ip("10.0.0.0/").is_none());
        let a = ip("10.1.2.3").unwrap();
        assert!(a.is_in_range(&ip("10.0.0.0/8").unwrap()));
        assert!(!a.is_in_range(&ip("11.0.0.0/8").unwrap()));
        assert!(
            ip("10.0.0.0/8")
                .unwrap()
                .is_in_range(&ip("0.0.0.0/0").unwrap())
        );
        assert!(
            !ip("10.0.0.0/8")
                .unwrap()
                .is_in_range(&ip("10.0.0.0/16").unwrap())
        );
        assert!(
            ip("2001:db8::1")
                .unwrap()
                .is_in_range(&ip("2001:db8::/32").unwrap())
        );
        assert!(!a.is_in_range(&ip("::/0").unwrap()));
        assert!(ip("127.0.0.1/8").unwrap().is_loopback());
        assert!(!ip("127.0.0.1/7").unwrap().is_loopback());
        assert_ne!(ip("10.0.0.1/8"), ip("10.0.0.0/8"));
    }

    #[test]
    fn datetimes() {
        assert_eq!(parse_datetime("1970-01-01"), Some(0));
        assert_eq!(parse_datetime("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(parse_datetime("1970-01-01T00:00:01.500Z"), Some(1500));
        assert_eq!(parse_datetime("1970-01-01T01:00:00+0100"), Some(0));
        assert_eq!(parse_datetime("1969-12-31T23:00:00-0100"), Some(0));
        assert_eq!(parse_datetime("2024-02-29"), Some(1_709_164_800_000));
        for bad in [
            "2023-02-29",
            "1970-1-01",
            "1970-01-01T",
            "1970-01-01T24:00:00Z",
            "1970-01-01T00:00:60Z",
            "1970-01-01T00:00:00",
            "1970-01-01T00:00:00+2400",
            "1970-01-01T00:00:00.5Z",
            "19700-01-01",
            "1970-13-01",
            "1970-01-00",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1d2h3m4s5ms"), Some(93_784_005));
        assert_eq!(parse_duration("-1s"), Some(-1000));
        assert_eq!(parse_duration("0ms"), Some(0));
        assert_eq!(parse_duration("1m1ms"), Some(60_001));
        for bad in [
            "",
            "-",
            "1",
            "1h1d",
            "1s1s",
            "d",
            "1x",
            "99999999999999999999d",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
