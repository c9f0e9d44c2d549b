//! `POST /v1/rooms/{id}/members`, `DELETE /v1/rooms/{id}/members/{user}`, `POST /v1/dms`, and
//! the rule that a private room is 404 to a non-member on every call.

use confab_client::protocol::{EventKind, ServerFrame, Visibility};
use confab_client::{Method, RawResponse, build};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::*;

fn members_path(room: &str) -> String {
    format!("/v1/rooms/{room}/members")
}

async fn add_raw(http: &confab_client::HttpClient, room: &str, user: &str) -> RawResponse {
    call(
        http,
        Method::POST,
        &members_path(room),
        Some(json!({"user": user})),
    )
    .await
}

async fn remove_raw(http: &confab_client::HttpClient, room: &str, user: &str) -> RawResponse {
    let path = format!(
        "/v1/rooms/{room}/members/{}",
        confab_client::http::encode(user)
    );
    call(http, Method::DELETE, &path, None).await
}

async fn dm_raw(http: &confab_client::HttpClient, user: &str) -> RawResponse {
    call(http, Method::POST, "/v1/dms", Some(json!({"user": user}))).await
}

#[tokio::test]
async fn the_owner_adds_a_member_by_name_or_by_id_and_the_join_names_who_added() {
    let app = spawn_app().await;
    let (ada, ada_ref) = app.user("ada").await;
    let (bob, bob_ref) = app.user("bob").await;
    let (carol, carol_ref) = app.user("carol").await;
    let (dan, dan_ref) = app.user("dan").await;
    let r = room(&ada, "secret", Visibility::Private).await;
    let raw = add_raw(&ada, &r.id, "bob").await;
    assert_eq!(raw.status, 204, "{}", raw.text());
    assert!(raw.body.is_empty());
    assert_eq!(add_raw(&ada, &r.id, &carol_ref.id).await.status, 204);
    // A name is folded like any input name.
    assert_eq!(add_raw(&ada, &r.id, "DAN").await.status, 204);
    let log = log(&ada, &r.id).await;
    let joins: Vec<_> = log[1..]
        .iter()
        .map(|e| (e.kind, e.from.clone(), e.by.clone()))
        .collect();
    let by = Some(ada_ref.clone());
    assert_eq!(
        joins,
        [
            (EventKind::Join, bob_ref, by.clone()),
            (EventKind::Join, carol_ref, by.clone()),
            (EventKind::Join, dan_ref, by),
        ]
    );
    for http in [&bob, &carol, &dan] {
        let mine = http.rooms().await.expect("rooms");
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].member_count, 4);
        http.messages(&r.id, None, None, None)
            .await
            .expect("a member reads the private room");
    }
    app.stop().await;
}

#[tokio::test]
async fn only_the_owner_may_add_or_remove_members() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let (bob, _) = app.user("bob").await;
    let (_, carol_ref) = app.user("carol").await;
    let (_, dan_ref) = app.user("dan").await;
    let r = room(&ada, "general", Visibility::Public).await;
    bob.join(&r.id).await.expect("join");
    ada.add_member(&r.id, "dan").await.expect("add");
    assert_error(&add_raw(&bob, &r.id, "carol").await, 403, "forbidden");
    assert_error(&add_raw(&bob, &r.id, &carol_ref.id).await, 403, "forbidden");
    // A non-owner is refused before any user lookup.
    assert_error(&add_raw(&bob, &r.id, "nobody").await, 403, "forbidden");
    assert_error(&remove_raw(&bob, &r.id, "dan").await, 403, "forbidden");
    assert_error(
        &remove_raw(&bob, &r.id, &dan_ref.id).await,
        403,
        "forbidden",
    );
    assert_error(&remove_raw(&bob, &r.id, "ada").await, 403, "forbidden");
    assert_eq!(log(&ada, &r.id).await.len(), 3, "nothing written");
    app.stop().await;
}

#[tokio::test]
async fn adding_an_unknown_user_is_404() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let r = room(&ada, "general", Visibility::Public).await;
    for user in ["nobody", "u_doesnotexist", "", "not a name!"] {
        assert_error(&add_raw(&ada, &r.id, user).await, 404, "not_found");
    }
    for body in [
        json!({}),
        json!({"user": 7}),
        json!({"user": "a", "role": "x"}),
    ] {
        let raw = call(&ada, Method::POST, &members_path(&r.id), Some(body)).await;
        assert_error(&raw, 400, "bad_request");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_owner_removes_a_member_by_name_or_by_id_and_the_leave_names_who_removed() {
    let app = spawn_app().await;
    let (ada, ada_ref) = app.user("ada").await;
    let (bob, bob_ref) = app.user("bob").await;
    let (carol, carol_ref) = app.user("carol").await;
    let public = room(&ada, "general", Visibility::Public).await;
    let private = room(&ada, "secret", Visibility::Private).await;
    bob.join(&public.id)
        .await
        .expect("bob joins the public room");
    ada.add_member(&private.id, "bob").await.expect("add bob");
    for r in [&public, &private] {
        ada.add_member(&r.id, "carol").await.expect("add carol");
    }
    for r in [&public, &private] {
        let raw = remove_raw(&ada, &r.id, "bob").await;
        assert_eq!(raw.status, 204, "{}", raw.text());
        assert!(raw.body.is_empty());
        assert_eq!(remove_raw(&ada, &r.id, &carol_ref.id).await.status, 204);
        let log = log(&ada, &r.id).await;
        let tail: Vec<_> = log[log.len() - 2..]
            .iter()
            .map(|e| (e.kind, e.from.clone(), e.by.clone()))
            .collect();
        let by = Some(ada_ref.clone());
        assert_eq!(
            tail,
            [
                (EventKind::Leave, bob_ref.clone(), by.clone()),
                (EventKind::Leave, carol_ref.clone(), by),
            ]
        );
    }
    for http in [&bob, &carol] {
        assert!(http.rooms().await.expect("rooms").is_empty());
        assert_eq!(
            failure(http.messages(&public.id, None, None, None).await).0,
            403
        );
        assert_eq!(
            failure(http.messages(&private.id, None, None, None).await).0,
            404
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn removing_someone_who_is_not_a_member_or_does_not_exist_is_404() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    app.user("bob").await;
    let r = room(&ada, "general", Visibility::Public).await;
    for user in ["bob", "nobody", "u_doesnotexist"] {
        assert_error(&remove_raw(&ada, &r.id, user).await, 404, "not_found");
    }
    assert_eq!(log(&ada, &r.id).await.len(), 1, "nothing written");
    app.stop().await;
}

#[tokio::test]
async fn the_owner_removing_themselves_follows_the_leave_rule() {
    let app = spawn_app().await;
    let (ada, ada_ref) = app.user("ada").await;
    let (bob, _) = app.user("bob").await;
    let r = room(&ada, "general", Visibility::Public).await;
    bob.join(&r.id).await.expect("join");
    assert_error(&remove_raw(&ada, &r.id, "ada").await, 403, "forbidden");
    ada.remove_member(&r.id, "bob").await.expect("remove bob");
    let raw = remove_raw(&ada, &r.id, &ada_ref.id).await;
    assert_eq!(raw.status, 204, "the last member may go: {}", raw.text());
    assert!(ada.rooms().await.expect("rooms").is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_removed_member_gets_their_leave_then_removed_and_nothing_of_the_room_after() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let (bob, bob_ref) = app.user("bob").await;
    let r = room(&ada, "general", Visibility::Public).await;
    let other = room(&ada, "other", Visibility::Public).await;
    bob.join(&r.id).await.expect("join");
    bob.join(&other.id).await.expect("join");
    let (mut ws, _) = app.ws(&bob).await;
    ada.remove_member(&r.id, "bob").await.expect("remove");
    let leave = next_msg(&mut ws).await;
    assert_eq!(
        (leave.room.as_str(), leave.seq, leave.kind, &leave.from),
        (r.id.as_str(), 3, EventKind::Leave, &bob_ref)
    );
    let removed = wait_for(&mut ws, "removed", |f| {
        matches!(f, ServerFrame::Removed { .. })
    })
    .await;
    assert_eq!(removed, ServerFrame::Removed { room: r.id.clone() });
    ada.publish(&r.id, "after", "bob must not see this")
        .await
        .expect("publish");
    // A message in a room bob is still in arrives; nothing of the other room came before it.
    ada.publish(&other.id, "marker", "bob sees this")
        .await
        .expect("publish");
    let e = next_msg(&mut ws).await;
    assert_eq!(
        (e.room.as_str(), e.body.as_deref()),
        (other.id.as_str(), Some("bob sees this"))
    );
    app.stop().await;
}

#[tokio::test]
async fn opening_a_dm_answers_200_with_a_private_room_of_the_two() {
    let app = spawn_app().await;
    let (ada, ada_ref) = app.user("ada").await;
    let (bob, bob_ref) = app.user("bob").await;
    let raw = dm_raw(&ada, "bob").await;
    assert_eq!(raw.status, 200, "{}", raw.text());
    let body = json(&raw);
    for key in [
        "id",
        "name",
        "visibility",
        "owner",
        "created_ts",
        "member_count",
        "last_seq",
    ] {
        assert!(body.get(key).is_some(), "{key} in {body}");
    }
    assert_eq!(body["visibility"], "private");
    assert_eq!(body["member_count"], 2);
    assert_eq!(body["last_seq"], 2);
    assert_eq!(body["name"], "ada, bob");
    assert_eq!(body["owner"], ada_ref.id.as_str());
    let id = body["id"].as_str().expect("id");
    // It starts with both members' joins.
    let log = log(&bob, id).await;
    let joins: Vec<_> = log
        .iter()
        .map(|e| (e.seq, e.kind, e.from.clone()))
        .collect();
    assert_eq!(
        joins,
        [(1, EventKind::Join, ada_ref), (2, EventKind::Join, bob_ref)]
    );
    for http in [&ada, &bob] {
        let mine = http.rooms().await.expect("rooms");
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].id, id);
    }
    app.stop().await;
}

#[tokio::test]
async fn asking_again_for_a_dm_returns_the_same_room_from_either_side_by_name_or_id() {
    let app = spawn_app().await;
    let (ada, ada_ref) = app.user("ada").await;
    let (bob, bob_ref) = app.user("bob").await;
    let first = ada.open_dm("bob").await.expect("dm");
    let asks = [
        (&ada, "bob".to_owned()),
        (&ada, "BOB".to_owned()),
        (&ada, bob_ref.id.clone()),
        (&bob, "ada".to_owned()),
        (&bob, ada_ref.id.clone()),
    ];
    for (http, user) in asks {
        let again = http.open_dm(&user).await.expect("dm again");
        assert_eq!(again.id, first.id, "asking {user}");
        assert_eq!(
            (again.last_seq, again.member_count),
            (2, 2),
            "nothing written"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_dm_after_one_side_left_is_the_same_room_and_rejoins_them() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let (bob, bob_ref) = app.user("bob").await;
    let dm = ada.open_dm("bob").await.expect("dm");
    bob.leave(&dm.id)
        .await
        .expect("either member may leave a DM");
    let again = ada.open_dm("bob").await.expect("dm again");
    assert_eq!(again.id, dm.id);
    assert_eq!((again.member_count, again.last_seq), (2, 4));
    let last = log(&ada, &dm.id).await.pop().expect("events");
    assert_eq!((last.kind, &last.from), (EventKind::Join, &bob_ref));
    app.stop().await;
}

#[tokio::test]
async fn a_dm_with_yourself_is_400() {
    let app = spawn_app().await;
    let (ada, ada_ref) = app.user("ada").await;
    for user in ["ada", "ADA", ada_ref.id.as_str()] {
        assert_error(&dm_raw(&ada, user).await, 400, "bad_request");
    }
    assert!(ada.rooms().await.expect("rooms").is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_dm_with_an_unknown_user_is_404() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    for user in ["nobody", "u_doesnotexist", ""] {
        assert_error(&dm_raw(&ada, user).await, 404, "not_found");
    }
    for body in [json!({}), json!({"user": null}), json!({"name": "bob"})] {
        let raw = call(&ada, Method::POST, "/v1/dms", Some(body)).await;
        assert_error(&raw, 400, "bad_request");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_dm_never_takes_a_third_member_and_its_members_cannot_be_removed() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let (bob, _) = app.user("bob").await;
    app.user("carol").await;
    let dm = ada.open_dm("bob").await.expect("dm");
    for http in [&ada, &bob] {
        assert_error(&add_raw(http, &dm.id, "carol").await, 403, "forbidden");
    }
    assert_error(&remove_raw(&ada, &dm.id, "bob").await, 403, "forbidden");
    assert_eq!(log(&ada, &dm.id).await.len(), 2, "nothing written");
    app.stop().await;
}

#[tokio::test]
async fn a_private_room_is_404_to_a_non_member_on_every_call() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let (bob, _) = app.user("bob").await;
    let (carol, _) = app.user("carol").await;
    let secret = room(&ada, "secret", Visibility::Private).await;
    ada.add_member(&secret.id, "bob").await.expect("add");
    let dm = ada.open_dm("bob").await.expect("dm");
    let calls = |id: &str| -> Vec<(Method, String, Option<Value>)> {
        let p = |what: &str| format!("/v1/rooms/{id}/{what}");
        vec![
            (Method::POST, p("join"), None),
            (Method::POST, p("leave"), None),
            (Method::POST, p("members"), Some(json!({"user": "carol"}))),
            (Method::POST, p("members"), Some(json!({"user": "nobody"}))),
            (Method::DELETE, p("members/bob"), None),
            (Method::DELETE, p("members/carol"), None),
            (Method::GET, p("messages"), None),
            (Method::GET, p("messages?after=0&limit=10"), None),
            (Method::GET, p("messages?before=2"), None),
            (
                Method::POST,
                p("messages"),
                Some(json!({"client_id": "c1", "body": "let me in"})),
            ),
        ]
    };
    let missing = calls("r_doesnotexist");
    for id in [&secret.id, &dm.id] {
        for ((method, path, body), (_, missing_path, missing_body)) in
            calls(id).into_iter().zip(missing.iter().cloned())
        {
            let hidden = call(&carol, method.clone(), &path, body).await;
            assert_eq!(hidden.status, 404, "{method} {path}: {}", hidden.text());
            assert_error(&hidden, 404, "not_found");
            let absent = call(&carol, method.clone(), &missing_path, missing_body).await;
            assert_eq!(
                error_code(&hidden),
                error_code(&absent),
                "{method} {path}: the same answer as a room that does not exist"
            );
            assert_eq!(hidden.status, absent.status);
        }
    }
    // Nothing carol asked for happened.
    assert_eq!(log(&ada, &secret.id).await.len(), 2);
    assert_eq!(log(&ada, &dm.id).await.len(), 2);
    assert!(carol.rooms().await.expect("rooms").is_empty());
    // The members themselves are answered normally.
    bob.messages(&secret.id, None, None, None)
        .await
        .expect("member");
    let mut ws_check = app.ws(&bob).await.0;
    let reply = ws_check
        .request(build::history(&dm.id, None, None, None), WAIT)
        .await
        .expect("member history");
    assert!(matches!(reply, ServerFrame::History { .. }));
    app.stop().await;
}

#[tokio::test]
async fn a_public_room_is_403_to_a_non_member_on_member_calls() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let (carol, _) = app.user("carol").await;
    app.user("bob").await;
    let r = room(&ada, "general", Visibility::Public).await;
    let p = |what: &str| format!("/v1/rooms/{}/{what}", r.id);
    let calls: Vec<(Method, String, Option<Value>)> = vec![
        (Method::POST, p("leave"), None),
        (Method::POST, p("members"), Some(json!({"user": "bob"}))),
        (Method::DELETE, p("members/ada"), None),
        (Method::GET, p("messages"), None),
        (
            Method::POST,
            p("messages"),
            Some(json!({"client_id": "c1", "body": "hi"})),
        ),
    ];
    for (method, path, body) in calls {
        let raw = call(&carol, method.clone(), &path, body).await;
        assert_eq!(raw.status, 403, "{method} {path}: {}", raw.text());
        assert_error(&raw, 403, "forbidden");
    }
    assert_eq!(log(&ada, &r.id).await.len(), 1, "nothing written");
    app.stop().await;
}

#[tokio::test]
async fn a_member_lists_the_members_and_others_cannot() {
    let app = spawn_app().await;
    let (ada, ada_u) = app.user("ada").await;
    let (bob, bob_u) = app.user("bob").await;
    let (eve, _) = app.user("eve").await;
    let public = room(&ada, "open", Visibility::Public).await;
    bob.join(&public.id).await.expect("join");
    let r = bob
        .raw(
            Method::GET,
            &format!("/v1/rooms/{}/members", public.id),
            None,
        )
        .await
        .expect("call");
    assert_eq!(r.status, 200);
    let mut ids: Vec<String> = r.json().expect("json")["members"]
        .as_array()
        .expect("list")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    let mut want = vec![ada_u.id.clone(), bob_u.id.clone()];
    want.sort();
    assert_eq!(ids, want);
    let r = eve
        .raw(
            Method::GET,
            &format!("/v1/rooms/{}/members", public.id),
            None,
        )
        .await
        .expect("call");
    assert_eq!(r.status, 403);
    let private = room(&ada, "closed", Visibility::Private).await;
    let r = eve
        .raw(
            Method::GET,
            &format!("/v1/rooms/{}/members", private.id),
            None,
        )
        .await
        .expect("call");
    assert_eq!(r.status, 404);
}
