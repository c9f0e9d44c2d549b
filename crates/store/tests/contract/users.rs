//! Users and session tokens.

use confab_domain::text::UserName;
use confab_store::StoreError;

use crate::{Backend, Fixture};

async fn a_created_user_is_found_by_id_and_by_name(b: Backend) {
    let f = Fixture::open(b).await;
    let ada = f.user("ada").await;
    assert_eq!(ada.name, "ada");
    assert!(ada.id.starts_with("u_") && ada.id.len() == 18, "{}", ada.id);

    assert_eq!(
        f.store.find_user(&ada.id).await.expect("reads"),
        Some(ada.clone())
    );
    assert_eq!(
        f.store.find_user("ada").await.expect("reads"),
        Some(ada.clone())
    );
    let record = f
        .store
        .user_by_name("ada")
        .await
        .expect("reads")
        .expect("found");
    assert_eq!(record.user, ada);
    assert_eq!(record.password_hash, "hash");
}

async fn find_user_folds_a_name_to_lower_case(b: Backend) {
    let f = Fixture::open(b).await;
    let ada = f.user("Ada").await;
    assert_eq!(ada.name, "ada");
    assert_eq!(f.store.find_user("ADA").await.expect("reads"), Some(ada));
}

async fn an_unknown_user_is_none(b: Backend) {
    let f = Fixture::open(b).await;
    f.user("ada").await;
    assert_eq!(f.store.find_user("bob").await.expect("reads"), None);
    assert_eq!(f.store.find_user("u_nobody").await.expect("reads"), None);
    assert_eq!(f.store.user_by_name("bob").await.expect("reads"), None);
}

async fn a_taken_name_is_a_conflict(b: Backend) {
    let f = Fixture::open(b).await;
    f.user("ada").await;
    let again = UserName::parse("ADA").expect("a valid name");
    let result = f.store.create_user(&again, "other").await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    let record = f
        .store
        .user_by_name("ada")
        .await
        .expect("reads")
        .expect("found");
    assert_eq!(record.password_hash, "hash", "the first user is untouched");
}

async fn a_token_is_read_back_with_its_user_and_revoked_once(b: Backend) {
    let f = Fixture::open(b).await;
    let ada = f.user("ada").await;
    f.store
        .create_token("h1", &ada.id, 1_700_000_000_000)
        .await
        .expect("stored");
    let token = f.store.token("h1").await.expect("reads").expect("found");
    assert_eq!(token.user, ada);
    assert_eq!(token.expires_ts, 1_700_000_000_000);
    assert_eq!(f.store.token("h2").await.expect("reads"), None);

    assert!(f.store.revoke_token("h1").await.expect("revoked"));
    assert!(!f.store.revoke_token("h1").await.expect("answered"));
    assert_eq!(f.store.token("h1").await.expect("reads"), None);
}

async fn calls_after_close_are_unavailable(b: Backend) {
    let f = Fixture::open(b).await;
    let ada = f.user("ada").await;
    f.store.close().await;
    let name = UserName::parse("bob").expect("a valid name");
    assert!(matches!(
        f.store.create_user(&name, "h").await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        f.store.find_user(&ada.id).await,
        Err(StoreError::Unavailable(_))
    ));
    // Closing twice is harmless.
    f.store.close().await;
}

crate::contract_tests!(
    a_created_user_is_found_by_id_and_by_name,
    find_user_folds_a_name_to_lower_case,
    an_unknown_user_is_none,
    a_taken_name_is_a_conflict,
    a_token_is_read_back_with_its_user_and_revoked_once,
    calls_after_close_are_unavailable,
);
