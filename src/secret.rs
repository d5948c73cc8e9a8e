//! The API key as a type that cannot be printed by accident.

use std::fmt;

/// A credential. `Debug` and `Display` print `***`; the value leaves only through [`Secret::expose`], at the one
/// place that puts it on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn never_formats_its_value() {
        let key = Secret::new("AIzaSy-very-secret");
        assert_eq!(
            format!("{key} {key:?} {:?}", Some(&key)),
            "*** *** Some(***)"
        );
    }
}
