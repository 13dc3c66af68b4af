//! The `pricing` section: USD per million tokens, by upstream model name.

use std::collections::{BTreeMap, HashMap};

use crate::config::path::YamlPath;
use crate::config::raw::RawPrice;
use crate::config::{ConfigProblem, Price};

pub(super) fn pricing(
    path: &YamlPath,
    raw: BTreeMap<String, RawPrice>,
    out: &mut Vec<ConfigProblem>,
) -> HashMap<String, Price> {
    let mut prices = HashMap::with_capacity(raw.len());
    for (model, price) in raw {
        let model_path = path.key(&model);
        for (key, value) in [("input", price.input), ("output", price.output)] {
            if !(value.is_finite() && value >= 0.0) {
                out.push(
                    model_path
                        .key(key)
                        .problem("must be a price of 0 or more (USD per million tokens)"),
                );
            }
        }
        prices.insert(model, Price { input: price.input, output: price.output });
    }
    prices
}
