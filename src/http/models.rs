//! `GET /v1/models`: the configured model names (aliases), in one list both SDKs parse (SPEC
//! §3): each item has OpenAI's fields (`id`, `object: "model"`, `created`, `owned_by`) and
//! Anthropic's (`type: "model"`, `display_name`, `created_at`), and the list has OpenAI's
//! `object: "list"` and Anthropic's page fields (`has_more: false`, `first_id`, `last_id`), so
//! neither SDK asks for a second page.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::extract::Authenticated;
use crate::state::AppState;

/// With gateway keys, only the models the caller's key may use.
pub async fn list_models(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Json<Value> {
    let created = state.loaded_at();
    let created_at = rfc3339(created);
    let data: Vec<Value> = state
        .config()
        .models
        .iter()
        .filter(|model| caller.as_ref().is_none_or(|caller| caller.may_use(&model.name)))
        .map(|model| {
            json!({
                "id": model.name,
                "object": "model",
                "created": created,
                "owned_by": "ballast",
                "type": "model",
                "display_name": model.name,
                "created_at": created_at,
            })
        })
        .collect();
    let first_id = data.first().map(|model| model["id"].clone()).unwrap_or(Value::Null);
    let last_id = data.last().map(|model| model["id"].clone()).unwrap_or(Value::Null);
    Json(json!({
        "object": "list",
        "data": data,
        "has_more": false,
        "first_id": first_id,
        "last_id": last_id,
    }))
}

/// `unix` seconds as an RFC 3339 UTC time (`2026-12-02T01:38:11Z`), Anthropic's `created_at`.
fn rfc3339(unix: u64) -> String {
    let (days, seconds) = (unix / 86_400, unix % 86_400);
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm, proleptic Gregorian).
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    let (hour, minute, second) = (seconds / 3_600, seconds % 3_600 / 60, seconds % 60);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn unix_times_are_written_as_rfc3339_utc() {
        let cases = [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_709_251_199, "2024-02-29T23:59:59Z"),
            (1_798_160_291, "2026-12-25T00:58:11Z"),
            (4_102_444_800, "2100-01-01T00:00:00Z"),
        ];
        for (unix, text) in cases {
            assert_eq!(rfc3339(unix), text, "{unix}");
        }
    }
}
