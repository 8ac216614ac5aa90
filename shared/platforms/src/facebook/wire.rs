//! Facebook Graph JSON: user tokens, the Pages a user manages, the page, and page posts.

use secrecy::SecretString;
use serde::Deserialize;

/// `GET /oauth/access_token` (code exchange and `fb_exchange_token`).
#[derive(Deserialize)]
pub struct UserToken {
    pub access_token: SecretString,
}

/// `GET /me/accounts`: the Pages the user has a role on, each with its page access token.
#[derive(Deserialize)]
pub struct Accounts {
    #[serde(default)]
    pub data: Vec<PageAccount>,
}

#[derive(Deserialize)]
pub struct PageAccount {
    pub id: String,
    pub access_token: SecretString,
    #[serde(default)]
    pub tasks: Option<Vec<String>>,
}

/// `GET /me?fields=id,name` with a page token: the Page.
#[derive(Deserialize)]
pub struct Me {
    pub id: String,
    #[serde(default)]
    pub name: String,
}

/// `POST /{page-id}/feed` → `{"id":"<page>_<post>"}`; `/photos` adds `post_id`.
#[derive(Deserialize)]
pub struct Created {
    pub id: String,
    #[serde(default)]
    pub post_id: Option<String>,
}

#[derive(Deserialize)]
pub struct Posts {
    #[serde(default)]
    pub data: Vec<Post>,
}

#[derive(Deserialize)]
pub struct Post {
    pub id: String,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub created_time: Option<String>,
}
