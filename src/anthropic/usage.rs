//! Anthropic's token counts of a message (OpenAI's are [`crate::openai::chat::Usage`]):
//! `message_start` carries the input ones, `message_delta` the output so far. Any of them may
//! be absent. The one reading of them, for the Anthropic provider's translation to OpenAI's
//! usage, the accounting of Messages answers and the cost of a cached Message.

use serde::Deserialize;

#[derive(Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Usage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cache_creation_input_tokens: Option<u64>,
    pub cache_read_input_tokens: Option<u64>,
}

impl Usage {
    /// Takes every count `later` has (`message_delta` counts are cumulative).
    pub fn update(&mut self, later: Usage) {
        self.input_tokens = later.input_tokens.or(self.input_tokens);
        self.output_tokens = later.output_tokens.or(self.output_tokens);
        self.cache_creation_input_tokens =
            later.cache_creation_input_tokens.or(self.cache_creation_input_tokens);
        self.cache_read_input_tokens =
            later.cache_read_input_tokens.or(self.cache_read_input_tokens);
    }

    /// Every input token: uncached, written to the cache and read from it. The sums saturate:
    /// the numbers are the upstream's, and a hostile one must not wrap them (release builds) or
    /// panic (debug builds).
    pub fn input(&self) -> u64 {
        [self.input_tokens, self.cache_creation_input_tokens, self.cache_read_input_tokens]
            .into_iter()
            .flatten()
            .fold(0, u64::saturating_add)
    }

    pub fn output(&self) -> u64 {
        self.output_tokens.unwrap_or(0)
    }

    /// The counts of a JSON `usage` object; none counted when it is not one.
    pub fn of(value: &serde_json::Value) -> Self {
        Self::deserialize(value).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_later_usage_replaces_only_the_counts_it_has() {
        let mut usage = Usage::of(
            &json!({"input_tokens": 25, "output_tokens": 1, "cache_read_input_tokens": 5}),
        );
        usage.update(Usage::of(&json!({"output_tokens": 42})));
        assert_eq!(
            (usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens),
            (Some(25), Some(42), Some(5))
        );
        assert_eq!(usage.cache_creation_input_tokens, None);
        assert_eq!((usage.input(), usage.output()), (30, 42));
    }

    #[test]
    fn input_counts_saturate_and_a_non_object_counts_nothing() {
        let huge = Usage::of(&json!({"input_tokens": u64::MAX, "cache_read_input_tokens": 9}));
        assert_eq!(huge.input(), u64::MAX);
        assert_eq!(Usage::of(&json!("nope")).input(), 0);
    }
}
