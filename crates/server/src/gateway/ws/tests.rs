use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

use super::*;

/// A client frame as a browser sends it: masked.
fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut out = vec![first];
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    out
}

fn pair(max: usize) -> (Conn<DuplexStream>, DuplexStream) {
    let (server, client) = duplex(1 << 20);
    (Conn::new(server, max), client)
}

#[tokio::test]
async fn reads_text_split_across_reads_and_frees_its_buffer() {
    let (mut conn, mut client) = pair(1 << 16);
    let frame = client_frame(0x81, "héllo".as_bytes());
    client.write_all(&frame[..3]).await.expect("write");
    let read = tokio::spawn(async move {
        let m = conn.read().await.expect("message");
        (m, conn)
    });
    tokio::task::yield_now().await;
    client.write_all(&frame[3..]).await.expect("write");
    let (m, conn) = read.await.expect("task");
    assert_eq!(m, Incoming::Text("héllo".into()));
    assert_eq!(conn.input.capacity(), 0, "nothing is held between messages");
}

#[tokio::test]
async fn reads_several_frames_from_one_read_and_joins_fragments() {
    let (mut conn, mut client) = pair(1 << 16);
    let mut bytes = client_frame(0x01, b"ab");
    bytes.extend(client_frame(0x89, b"p")); // a ping between fragments
    bytes.extend(client_frame(0x80, b"cd"));
    bytes.extend(client_frame(0x82, b"\x00\x01"));
    bytes.extend(client_frame(0x8A, b""));
    client.write_all(&bytes).await.expect("write");
    assert_eq!(
        conn.read().await.expect("ping"),
        Incoming::Ping(b"p".to_vec())
    );
    assert_eq!(
        conn.read().await.expect("text"),
        Incoming::Text("abcd".into())
    );
    assert_eq!(conn.read().await.expect("binary"), Incoming::Binary);
    assert_eq!(conn.read().await.expect("pong"), Incoming::Pong);
    drop(client);
    assert!(matches!(conn.read().await, Err(ReadError::Ended)));
}

#[tokio::test]
async fn refuses_what_breaks_the_rules() {
    let cases: [(Vec<u8>, &str); 6] = [
        (
            {
                let mut f = client_frame(0x81, b"x");
                f[1] &= 0x7F;
                f.truncate(2);
                f.push(b'x');
                f
            },
            "unmasked",
        ),
        (client_frame(0xC1, b"x"), "rsv1"),
        (client_frame(0x83, b"x"), "reserved opcode"),
        (client_frame(0x80, b"x"), "orphan continuation"),
        (client_frame(0x09, b"x"), "fragmented ping"),
        (
            [client_frame(0x01, b"a"), client_frame(0x81, b"b")].concat(),
            "nested message",
        ),
    ];
    for (bytes, what) in cases {
        let (mut conn, mut client) = pair(1 << 16);
        client.write_all(&bytes).await.expect("write");
        let r = conn.read().await;
        assert!(matches!(r, Err(ReadError::Protocol(_))), "{what}: {r:?}");
    }
}

#[tokio::test]
async fn refuses_oversized_frames_before_they_arrive_and_bad_utf8() {
    let (mut conn, mut client) = pair(100);
    // Only the header of a 1 MB frame: refused without waiting for (or buffering) the rest.
    let header = &client_frame(0x81, &vec![b'a'; 1 << 20])[..14];
    client.write_all(header).await.expect("write");
    assert!(matches!(conn.read().await, Err(ReadError::TooLarge)));

    let (mut conn, mut client) = pair(100);
    let bytes = [
        client_frame(0x01, &[b'a'; 60]),
        client_frame(0x80, &[b'a'; 60]),
    ]
    .concat();
    client.write_all(&bytes).await.expect("write");
    assert!(
        matches!(conn.read().await, Err(ReadError::TooLarge)),
        "fragments count together"
    );

    let (mut conn, mut client) = pair(100);
    client
        .write_all(&client_frame(0x81, &[0xC3, 0x28]))
        .await
        .expect("write");
    assert!(matches!(conn.read().await, Err(ReadError::BadUtf8)));
}

#[tokio::test]
async fn writes_queued_frames_in_one_go_and_frees_the_buffer() {
    let (mut conn, mut client) = pair(1 << 16);
    conn.queue_text("hi");
    let long = "x".repeat(300);
    conn.queue_text(&long);
    conn.queue_ping();
    conn.queue_close(4009, "slow");
    let len = 4 + 4 + 300 + 2 + 8;
    assert_eq!(conn.pending(), len);
    conn.flush().await.expect("flush");
    assert_eq!(conn.output.capacity(), 0);
    let mut got = vec![0u8; len];
    client.read_exact(&mut got).await.expect("read");
    assert_eq!(&got[..4], b"\x81\x02hi");
    assert_eq!(&got[4..8], &[0x81, 126, 0x01, 0x2C]);
    assert_eq!(&got[308..310], b"\x89\x00");
    assert_eq!(&got[310..], b"\x88\x06\x0f\xa9slow");
}
