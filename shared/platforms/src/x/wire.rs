//! X's JSON, as documented for API v2.

use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
pub struct Data<T> {
    pub data: T,
}

#[derive(Deserialize)]
pub struct User {
    pub id: String,
    pub name: String,
    pub username: String,
}

#[derive(Serialize)]
pub struct CreateTweet<'a> {
    pub text: &'a str,
}

#[derive(Deserialize)]
pub struct Tweet {
    pub id: String,
    #[serde(default)]
    pub text: String,
}

#[derive(Deserialize)]
pub struct TweetList {
    pub data: Option<Vec<Tweet>>,
}

/// X's problem body (RFC 7807 style) and its older `errors` array; every field optional because
/// error bodies vary by endpoint.
#[derive(Deserialize, Default)]
pub struct Problem {
    pub title: Option<String>,
    pub detail: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub errors: Option<Vec<ProblemError>>,
    pub status: Option<u16>,
}

#[derive(Deserialize)]
pub struct ProblemError {
    pub code: Option<i64>,
    pub message: Option<String>,
}
