//! Loading many credentials in one query (the refresher's leased batches, the publisher's
//! attempts): each account once, absent accounts left out, one bad row spoiling only itself.

use lifeline_kit::ids::AccountId;
use lifeline_vault::{Vault, VaultError, VaultKeys};

use crate::{insert_many, keys, Db};

#[tokio::test]
async fn load_many_answers_each_stored_account_and_a_bad_row_spoils_only_its_own(
) -> anyhow::Result<()> {
    let db = Db::fresh().await?;
    let vault = Vault::new(db.pool.clone(), keys(&[&VaultKeys::generate("k1").1], None));
    let ids = insert_many(&vault, 4).await?;
    // One row tampered with: its access token no longer opens.
    sqlx::query("UPDATE vault.credentials SET access_token = set_byte(access_token, 20, get_byte(access_token, 20) # 1) WHERE account_id = $1")
        .bind(ids[1])
        .execute(&db.pool)
        .await?;
    let unknown = AccountId::new();

    let mut asked = ids.clone();
    asked.push(unknown);
    let loaded = vault.load_many(&asked).await?;
    assert_eq!(loaded.len(), 4, "the unknown account is absent, every stored one answered");
    for (account, answer) in &loaded {
        assert_ne!(*account, unknown);
        match answer {
            Ok(c) if *account != ids[1] => {
                assert_eq!(c.account_id, *account);
                let single = vault.load(*account).await?.expect("stored");
                use secrecy::ExposeSecret as _;
                assert_eq!(
                    c.tokens.access_token.expose_secret(),
                    single.tokens.access_token.expose_secret(),
                    "the same tokens as a single load"
                );
                assert_eq!(c.version, single.version);
            }
            Err(VaultError::Undecryptable(a)) if *a == ids[1] => {}
            other => panic!("{account}: unexpected {other:?}"),
        }
    }
    db.drop_database().await
}
