//! `GET /v1/rooms`, `GET /v1/rooms/public`, `POST /v1/rooms`, join and leave.

use confab_client::protocol::{EventKind, Visibility};
use confab_client::{Method, RawResponse};
use serde_json::json;

use crate::helpers::*;
use crate::*;

const ROOM_KEYS: &[&str] = &[
    "id",
    "name",
    "visibility",
    "owner",
    "created_ts",
    "member_count",
    "last_seq",
];

async fn create_raw(http: &confab_client::HttpClient, body: serde_json::Value) -> RawResponse {
    call(http, Method::POST, "/v1/rooms", Some(body)).await
}

fn names(rooms: &[confab_client::protocol::Room]) -> Vec<&str> {
    rooms.iter().map(|r| r.name.as_str()).collect()
}

#[tokio::test]
async fn creating_a_room_answers_201_with_the_caller_as_owner_and_only_member() {
    let app = spawn_app().await;
    let (ada, ada_ref) = app.user("ada").await;
    for visibility in ["public", "private"] {
        let raw = create_raw(&ada, json!({"name": "general", "visibility": visibility})).await;
        assert_eq!(raw.status, 201, "{}", raw.text());
        let body = json(&raw);
        assert_eq!(keys(&body), set(ROOM_KEYS), "{body}");
        assert_eq!(body["name"], "general");
        assert_eq!(body["visibility"], visibility);
        assert_eq!(body["owner"], ada_ref.id.as_str());
        assert_eq!(body["member_count"], 1);
        assert_eq!(body["last_seq"], 1);
        assert_recent(body["created_ts"].as_i64().expect("created_ts is a number"));
        let id = body["id"].as_str().expect("id");
        assert!(
            !id.is_empty()
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b)),
            "URL-safe id: {id:?}"
        );
        // Its first event, seq 1, is the owner's join.
        let log = log(&ada, id).await;
        assert_eq!(log.len(), 1);
        assert_eq!(
            (log[0].seq, log[0].kind, &log[0].from, &log[0].by),
            (1, EventKind::Join, &ada_ref, &None)
        );
        assert!(ada.rooms().await.expect("rooms").iter().any(|r| r.id == id));
    }
    app.stop().await;
}

#[tokio::test]
async fn a_room_created_without_a_visibility_is_public_and_names_need_not_be_unique() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let one = json(&create_raw(&ada, json!({"name": "general"})).await);
    assert_eq!(one["visibility"], "public");
    let two = json(&create_raw(&ada, json!({"name": "general"})).await);
    assert_eq!(two["name"], "general");
    assert_ne!(one["id"], two["id"]);
    app.stop().await;
}

#[tokio::test]
async fn a_room_name_must_be_1_to_64_characters_not_blank_and_without_control_characters() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let too_long = "a".repeat(65);
    for name in ["", too_long.as_str(), "   ", "\t", "a\nb", "bell\u{7}"] {
        assert_error(
            &create_raw(&ada, json!({"name": name})).await,
            400,
            "bad_request",
        );
    }
    // Characters, not bytes: 64 × `é` is 128 bytes.
    let longest = "é".repeat(64);
    for name in ["x", longest.as_str(), "Ünïcode ✓ room", " padded "] {
        let raw = create_raw(&ada, json!({"name": name})).await;
        assert_eq!(raw.status, 201, "{name:?}: {}", raw.text());
        assert_eq!(json(&raw)["name"], name);
    }
    for body in [
        json!({"name": "x", "visibility": "secret"}),
        json!({"name": "x", "visibility": null}),
        json!({"visibility": "public"}),
        json!({"name": 5}),
        json!({"name": "x", "topic": "y"}),
    ] {
        assert_error(&create_raw(&ada, body).await, 400, "bad_request");
    }
    app.stop().await;
}

#[tokio::test]
async fn my_rooms_are_listed_by_id_each_with_a_read_seq_that_sending_does_not_move() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let (bob, _) = app.user("bob").await;
    let a1 = room(&ada, "one", Visibility::Public).await;
    let a2 = room(&ada, "two", Visibility::Private).await;
    let b1 = room(&bob, "bob's", Visibility::Public).await;
    let left = room(&bob, "left", Visibility::Public).await;
    ada.publish(&b1.id, "x", "not a member yet")
        .await
        .expect_err("not a member");
    bob.publish(&b1.id, "b1", "before ada")
        .await
        .expect("publish");
    ada.join(&b1.id).await.expect("join"); // ada's join is seq 3
    ada.join(&left.id).await.expect("join");
    ada.leave(&left.id).await.expect("leave");
    ada.publish(&b1.id, "a1", "sending moves no marker")
        .await
        .expect("publish");
    ada.publish(&a1.id, "a2", "nor here")
        .await
        .expect("publish");

    let raw = call(&ada, Method::GET, "/v1/rooms", None).await;
    assert_eq!(raw.status, 200);
    let body = json(&raw);
    assert_eq!(keys(&body), set(&["rooms"]));
    for r in body["rooms"].as_array().expect("rooms") {
        let mut expected = set(ROOM_KEYS);
        expected.insert("read_seq".into());
        assert_eq!(keys(r), expected, "{r}");
    }
    let rooms = ada.rooms().await.expect("rooms");
    let mut ids = vec![a1.id.clone(), a2.id.clone(), b1.id.clone()];
    ids.sort();
    assert_eq!(
        rooms.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        ids,
        "mine, by id; not the one left"
    );
    let by_id = |id: &str| rooms.iter().find(|r| r.id == id).expect("listed").clone();
    assert_eq!(
        (by_id(&a1.id).read_seq, by_id(&a1.id).last_seq),
        (Some(1), 2)
    );
    assert_eq!(by_id(&a2.id).read_seq, Some(1));
    let b = by_id(&b1.id);
    assert_eq!((b.read_seq, b.last_seq, b.member_count), (Some(3), 4, 2));
    assert_eq!(b.owner, b1.owner);
    // Bob's marker in his room stays at his join.
    let bobs = bob.rooms().await.expect("rooms");
    let b = bobs.iter().find(|r| r.id == b1.id).expect("listed");
    assert_eq!((b.read_seq, b.last_seq), (Some(1), 4));
    app.stop().await;
}

#[tokio::test]
async fn public_search_matches_names_case_insensitively_and_lists_them_by_name() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let (bob, _) = app.user("bob").await;
    for name in ["zzz rust", "rusty", "general", "trust", "rust lovers"] {
        room(&ada, name, Visibility::Public).await;
    }
    room(&ada, "ZIG club", Visibility::Public).await;
    room(&ada, "rust secrets", Visibility::Private).await;
    // Anyone may search, member or not; matches are by substring, any case, in name order.
    let found = bob.public_rooms(Some("RuSt"), None).await.expect("search");
    assert_eq!(names(&found), ["rust lovers", "rusty", "trust", "zzz rust"]);
    let found = bob.public_rooms(Some("zig"), None).await.expect("search");
    assert_eq!(names(&found), ["ZIG club"]);
    let found = bob
        .public_rooms(Some("nothing"), None)
        .await
        .expect("search");
    assert!(found.is_empty());
    let all = bob.public_rooms(None, None).await.expect("search");
    assert_eq!(all.len(), 6);
    let empty_q = bob.public_rooms(Some(""), None).await.expect("search");
    assert_eq!(empty_q, all, "an empty q matches every public room");
    for r in &found {
        assert_eq!(r.visibility, Visibility::Public);
    }
    let raw = call(&bob, Method::GET, "/v1/rooms/public?q=rust", None).await;
    assert_eq!(raw.status, 200);
    assert_eq!(keys(&json(&raw)), set(&["rooms"]));
    app.stop().await;
}

#[tokio::test]
async fn private_rooms_are_never_listed_in_public_search_not_even_to_their_members() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let (bob, _) = app.user("bob").await;
    let secret = room(&ada, "secret plans", Visibility::Private).await;
    ada.add_member(&secret.id, "bob").await.expect("add");
    ada.open_dm("bob").await.expect("dm");
    for http in [&ada, &bob] {
        for q in [None, Some("secret"), Some("ada"), Some("bob")] {
            let found = http.public_rooms(q, Some(100)).await.expect("search");
            assert!(found.is_empty(), "{q:?}: {found:?}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn in_public_search_percent_and_underscore_match_literally_and_q_is_at_most_64_characters() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    for name in ["100% fun", "100 fun", "a_b", "axb"] {
        room(&ada, name, Visibility::Public).await;
    }
    assert_eq!(
        names(&ada.public_rooms(Some("%"), None).await.expect("q")),
        ["100% fun"]
    );
    assert_eq!(
        names(&ada.public_rooms(Some("_"), None).await.expect("q")),
        ["a_b"]
    );
    let q64 = "q".repeat(64);
    ada.public_rooms(Some(&q64), None)
        .await
        .expect("64 characters");
    let q65 = "q".repeat(65);
    let raw = call(
        &ada,
        Method::GET,
        &format!("/v1/rooms/public?q={q65}"),
        None,
    )
    .await;
    assert_error(&raw, 400, "bad_request");
    app.stop().await;
}

#[tokio::test]
async fn public_search_limit_is_1_to_100_and_defaults_to_50() {
    let app = spawn_with(|c| c.sqlite_synchronous = "normal".into()).await;
    let (ada, _) = app.user("ada").await;
    for i in 0..101 {
        room(&ada, &format!("room {i:03}"), Visibility::Public).await;
    }
    let expected: Vec<String> = (0..101).map(|i| format!("room {i:03}")).collect();
    let default = ada.public_rooms(None, None).await.expect("default");
    assert_eq!(names(&default), expected[..50]);
    let hundred = ada
        .public_rooms(Some("room"), Some(100))
        .await
        .expect("100");
    assert_eq!(names(&hundred), expected[..100]);
    let one = ada.public_rooms(None, Some(1)).await.expect("1");
    assert_eq!(names(&one), ["room 000"]);
    for limit in ["0", "101", "-1", "abc", "1.5", "99999999999999999999999"] {
        let raw = call(
            &ada,
            Method::GET,
            &format!("/v1/rooms/public?limit={limit}"),
            None,
        )
        .await;
        assert_eq!(raw.status, 400, "limit={limit}: {}", raw.text());
        assert_error(&raw, 400, "bad_request");
    }
    app.stop().await;
}

#[tokio::test]
async fn joining_a_public_room_answers_200_with_the_room_and_writes_the_join() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let (bob, bob_ref) = app.user("bob").await;
    let r = room(&ada, "general", Visibility::Public).await;
    let raw = call(
        &bob,
        Method::POST,
        &format!("/v1/rooms/{}/join", r.id),
        None,
    )
    .await;
    assert_eq!(raw.status, 200, "{}", raw.text());
    let body = json(&raw);
    for key in ROOM_KEYS {
        assert!(body.get(key).is_some(), "{key} in {body}");
    }
    assert_eq!(body["id"], r.id.as_str());
    assert_eq!(body["member_count"], 2);
    assert_eq!(body["last_seq"], 2);
    let log = log(&ada, &r.id).await;
    assert_eq!(
        (log[1].seq, log[1].kind, &log[1].from, &log[1].by),
        (2, EventKind::Join, &bob_ref, &None)
    );
    let mine = bob.rooms().await.expect("rooms");
    assert_eq!(mine.len(), 1);
    assert_eq!(
        (mine[0].id.as_str(), mine[0].read_seq),
        (r.id.as_str(), Some(2))
    );
    app.stop().await;
}

#[tokio::test]
async fn joining_again_as_a_member_answers_200_and_writes_nothing() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let (bob, _) = app.user("bob").await;
    let r = room(&ada, "general", Visibility::Public).await;
    let secret = room(&ada, "secret", Visibility::Private).await;
    bob.join(&r.id).await.expect("join");
    for (http, id) in [(&bob, &r.id), (&ada, &r.id), (&ada, &secret.id)] {
        let before = log(&ada, id).await;
        let again = http.join(id).await.expect("joining again is 200");
        assert_eq!(again.last_seq, before.len() as u64, "nothing written");
        assert_eq!(log(&ada, id).await, before);
    }
    let r = bob.join(&r.id).await.expect("join");
    assert_eq!((r.last_seq, r.member_count), (2, 2));
    app.stop().await;
}

#[tokio::test]
async fn joining_a_private_room_as_a_non_member_is_404_like_a_room_that_does_not_exist() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let (bob, _) = app.user("bob").await;
    let secret = room(&ada, "secret", Visibility::Private).await;
    let hidden = call(
        &bob,
        Method::POST,
        &format!("/v1/rooms/{}/join", secret.id),
        None,
    )
    .await;
    let missing = call(&bob, Method::POST, "/v1/rooms/r_doesnotexist/join", None).await;
    assert_error(&hidden, 404, "not_found");
    assert_error(&missing, 404, "not_found");
    assert_eq!(hidden.body, missing.body, "the same answer");
    assert_eq!(log(&ada, &secret.id).await.len(), 1, "nothing written");
    app.stop().await;
}

#[tokio::test]
async fn leaving_answers_204_writes_the_leave_and_ends_access_to_the_room() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let (bob, bob_ref) = app.user("bob").await;
    let r = room(&ada, "general", Visibility::Public).await;
    bob.join(&r.id).await.expect("join");
    let raw = call(
        &bob,
        Method::POST,
        &format!("/v1/rooms/{}/leave", r.id),
        None,
    )
    .await;
    assert_eq!(raw.status, 204, "{}", raw.text());
    assert!(raw.body.is_empty());
    let log = log(&ada, &r.id).await;
    assert_eq!(
        (log[2].seq, log[2].kind, &log[2].from, &log[2].by),
        (3, EventKind::Leave, &bob_ref, &None)
    );
    assert!(bob.rooms().await.expect("rooms").is_empty());
    let (status, _) = failure(bob.messages(&r.id, None, None, None).await);
    assert_eq!(status, 403, "no longer a member of a public room");
    let ada_rooms = ada.rooms().await.expect("rooms");
    assert_eq!(ada_rooms[0].member_count, 1);
    app.stop().await;
}

#[tokio::test]
async fn the_owner_may_leave_only_as_the_last_member() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let (bob, _) = app.user("bob").await;
    let r = room(&ada, "general", Visibility::Public).await;
    bob.join(&r.id).await.expect("join");
    let raw = call(
        &ada,
        Method::POST,
        &format!("/v1/rooms/{}/leave", r.id),
        None,
    )
    .await;
    assert_error(&raw, 403, "forbidden");
    assert_eq!(log(&ada, &r.id).await.len(), 2, "nothing written");
    bob.leave(&r.id).await.expect("bob leaves");
    ada.leave(&r.id).await.expect("the owner leaves last");
    assert!(ada.rooms().await.expect("rooms").is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_non_member_leaving_is_403_for_a_public_room_and_404_for_a_private_one() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let (bob, _) = app.user("bob").await;
    let public = room(&ada, "general", Visibility::Public).await;
    let private = room(&ada, "secret", Visibility::Private).await;
    let leave = |id: &str| format!("/v1/rooms/{id}/leave");
    assert_error(
        &call(&bob, Method::POST, &leave(&public.id), None).await,
        403,
        "forbidden",
    );
    assert_error(
        &call(&bob, Method::POST, &leave(&private.id), None).await,
        404,
        "not_found",
    );
    assert_error(
        &call(&bob, Method::POST, &leave("r_nope"), None).await,
        404,
        "not_found",
    );
    app.stop().await;
}
