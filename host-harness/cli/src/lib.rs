//! meshward: the policy author's command line.
