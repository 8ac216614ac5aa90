//! The `next`/`after` cursor of the paged lists: `<micros since epoch>_<uuid>`, the sort key of
//! the last row of a page, opaque to clients.

use chrono::{DateTime, Utc};
use lifeline_kit::http::ApiError;

pub(crate) fn encode(at: DateTime<Utc>, id: uuid::Uuid) -> String {
    format!("{}_{}", at.timestamp_micros(), id)
}

/// The cursor given as `after`; 400 when it is not one this service wrote.
pub(crate) fn decode(c: &str) -> Result<(DateTime<Utc>, uuid::Uuid), ApiError> {
    let bad = || ApiError::bad_request("after must be the `next` of a previous page");
    let (micros, id) = c.split_once('_').ok_or_else(bad)?;
    let at = DateTime::from_timestamp_micros(micros.parse().map_err(|_| bad())?).ok_or_else(bad)?;
    Ok((at, uuid::Uuid::parse_str(id).map_err(|_| bad())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_and_junk_is_refused() {
        let at = DateTime::from_timestamp_micros(1_764_000_000_123_456).expect("time");
        let id = uuid::Uuid::now_v7();
        assert_eq!(decode(&encode(at, id)).expect("decodes"), (at, id));
        for junk in [
            "",
            "_",
            "12_",
            "x_0190a5c8-0000-7000-8000-000000000001",
            "12_not-a-uuid",
            "99999999999999999999_0190a5c8-0000-7000-8000-000000000001",
        ] {
            let err = decode(junk).expect_err(junk);
            assert_eq!(err.code, "bad_request", "{junk}");
        }
    }
}
