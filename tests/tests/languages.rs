//! The Python, JavaScript and C guests (`guest/python`, `guest/js`, `guest/c`, built by
//! `scripts/build-guests`) on capnet, over real loopback sockets: each language's echo server
//! answers real clients, and each language's client reaches an allowed server and is refused,
//! with `access-denied` and no connection, at a denied one. Python and JavaScript have WASI 0.3
//! guests too (`guest/python/p3`, `guest/js/p3`: async programs on `wasi:sockets@0.3.0`), which
//! run the same tests, and serve their connections at once.
//!
//! Every language runs the same tests (the `language!` macro); a guest that is missing or
//! broken fails them, never skips them.

use capnet::policy::Verdict::Allow;
use capnet_tests::{
    PATIENCE, Running, assert_unreached, ctx, exports, guest, lang_guest, pattern, policy,
    pong_server,
};
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Sends `data` to the echo server at `addr`, shuts down the sending side, and returns all
/// that came back; writing and reading run together so neither side's buffers fill up.
async fn echo_through(addr: SocketAddr, data: Vec<u8>) -> Vec<u8> {
    let stream = TcpStream::connect(addr).await.expect("connect to guest");
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        wr.write_all(&data).await.expect("write");
        wr.shutdown().await.expect("shutdown");
    });
    let mut back = Vec::new();
    rd.read_to_end(&mut back).await.expect("read echo");
    writer.await.unwrap();
    back
}

async fn echo_server_answers_real_clients(lang: &str) {
    let policy = policy(&[(Allow, "listen", "127.0.0.1:0")]);
    let server = lang_guest(lang, "echo-server");
    let guest = Running::start_path(&server, &["127.0.0.1:0", "2"], ctx(policy));
    let addr = guest.listening().await;
    assert_ne!(addr.port(), 0, "the guest reports the port the host chose");

    assert_eq!(echo_through(addr, b"hello\n".to_vec()).await, b"hello\n");
    // More than one read and one write of the guest: 1 MiB, in order and unchanged.
    let data = pattern(1 << 20, 3);
    assert!(
        echo_through(addr, data.clone()).await == data,
        "1 MiB comes back intact"
    );

    let done = guest.finish().await;
    assert_eq!(done.code, 0, "stderr: {}", done.stderr);
    assert_eq!(done.stdout, format!("listening on {addr}\n"));
}

async fn echo_server_without_a_listen_right_is_access_denied(lang: &str) {
    // The right to connect is not the right to bind.
    let policy = policy(&[(Allow, "connect", "127.0.0.1")]);
    let server = lang_guest(lang, "echo-server");
    let guest = Running::start_path(&server, &["127.0.0.1:0", "1"], ctx(policy));
    let done = guest.finish().await;

    assert_eq!(done.code, 1);
    assert_eq!(done.stderr, "error: bind 127.0.0.1:0: access-denied\n");
    assert_eq!(done.stdout, "", "it never listened");
}

async fn client_reaches_an_allowed_server_and_prints_its_reply(lang: &str) {
    let (addr, server) = pong_server().await;
    let policy = policy(&[(Allow, "connect", &addr.to_string())]);
    let client = lang_guest(lang, "tcp-client");
    let guest = Running::start_path(&client, &[&addr.to_string(), "ping"], ctx(policy));
    let done = guest.finish().await;

    assert_eq!(done.code, 0, "stderr: {}", done.stderr);
    assert_eq!(done.stdout, "pong:ping");
    assert_eq!(server.await.unwrap(), 4, "the server read the message");
}

/// The reply arrives in two parts with a pause between, so the client reads twice and its
/// second read lifts a list into memory while the first part still sits in stdout's buffer.
/// A C guest built as a command module trapped here every time ("cannot leave component
/// instance": its realloc ran libc's destructors, which flushed stdout through an import).
async fn client_prints_a_reply_that_arrives_in_two_reads(lang: &str) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        stream.read_to_end(&mut request).await.unwrap();
        stream.write_all(b"first,").await.unwrap();
        stream.flush().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        stream.write_all(b"second").await.unwrap();
    });
    let policy = policy(&[(Allow, "connect", &addr.to_string())]);
    let client = lang_guest(lang, "tcp-client");
    let done = Running::start_path(&client, &[&addr.to_string(), "x"], ctx(policy))
        .finish()
        .await;

    assert_eq!(done.code, 0, "stderr: {}", done.stderr);
    assert_eq!(done.stdout, "first,second");
    server.await.unwrap();
}

async fn client_to_a_denied_address_is_access_denied_and_reaches_no_listener(lang: &str) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap();
    // A rule for another port of the same host must not cover this one.
    let policy = policy(&[(Allow, "connect", "127.0.0.1:1")]);
    let client = lang_guest(lang, "tcp-client");
    let guest = Running::start_path(&client, &[&target.to_string(), "hello"], ctx(policy));
    let done = guest.finish().await;

    assert_eq!(done.code, 1);
    assert_eq!(
        done.stderr,
        format!("error: connect {target}: access-denied\n")
    );
    assert_eq!(done.stdout, "");
    assert_unreached(&listener).await;
}

async fn client_and_server_talk_over_ipv6(lang: &str) {
    let listen = policy(&[(Allow, "listen", "[::1]:0")]);
    let server = Running::start_path(
        &lang_guest(lang, "echo-server"),
        &["[::1]:0", "1"],
        ctx(listen),
    );
    let addr = server.listening().await;
    assert!(
        addr.is_ipv6() && addr.ip().is_loopback(),
        "listening on {addr}"
    );
    let connect = policy(&[(Allow, "connect", &addr.to_string())]);
    let client = Running::start_path(
        &lang_guest(lang, "tcp-client"),
        &[&addr.to_string(), "over v6"],
        ctx(connect),
    );
    let done = client.finish().await;
    assert_eq!(done.code, 0, "stderr: {}", done.stderr);
    assert_eq!(done.stdout, "over v6");
    let served = server.finish().await;
    assert_eq!(served.code, 0, "stderr: {}", served.stderr);
    // The address is printed the way every capnet guest prints it: `[::1]:PORT`.
    assert_eq!(served.stdout, format!("listening on {addr}\n"));
}

/// The tests of one language, as a module named after it.
macro_rules! language {
    ($module:ident, $lang:literal) => {
        mod $module {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn echo_server_answers_real_clients() {
                super::echo_server_answers_real_clients($lang).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn echo_server_without_a_listen_right_is_access_denied() {
                super::echo_server_without_a_listen_right_is_access_denied($lang).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn client_reaches_an_allowed_server_and_prints_its_reply() {
                super::client_reaches_an_allowed_server_and_prints_its_reply($lang).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn client_prints_a_reply_that_arrives_in_two_reads() {
                super::client_prints_a_reply_that_arrives_in_two_reads($lang).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn client_to_a_denied_address_is_access_denied_and_reaches_no_listener() {
                super::client_to_a_denied_address_is_access_denied_and_reaches_no_listener($lang)
                    .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn client_and_server_talk_over_ipv6() {
                super::client_and_server_talk_over_ipv6($lang).await;
            }
        }
    };
}

language!(python, "python");
language!(js, "js");
language!(c, "c");
language!(python_p3, "python-p3");
language!(js_p3, "js-p3");

/// The Python and JavaScript 0.3 guests are WASI 0.3 commands: their one entry point is
/// `wasi:cli/run@0.3.0`, so capnet runs them on its 0.3 front.
#[test]
fn python_and_js_p3_guests_export_the_0_3_entry_point_only() {
    for lang in ["python-p3", "js-p3"] {
        for name in ["echo-server", "tcp-client"] {
            let exports = exports(&lang_guest(lang, name));
            let runs: Vec<&String> = exports
                .iter()
                .filter(|e| e.starts_with("wasi:cli/run@"))
                .collect();
            assert_eq!(runs, ["wasi:cli/run@0.3.0"], "{lang}-{name}: {exports:?}");
        }
    }
}

/// A 0.3 echo server (an asyncio task, an async function, per connection) serves its
/// connections at once: each of five clients has its first part echoed while all five are
/// open and none has ended its side. A server that served one connection at a time would
/// never answer the second.
async fn p3_echo_server_serves_connections_at_once(lang: &str) {
    const CLIENTS: usize = 5;
    let policy = policy(&[(Allow, "listen", "127.0.0.1:0")]);
    let server = Running::start_path(
        &lang_guest(lang, "echo-server"),
        &["127.0.0.1:0", &CLIENTS.to_string()],
        ctx(policy),
    );
    let addr = server.listening().await;
    let mut streams = Vec::new();
    for i in 0..CLIENTS {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(&pattern(1000, i as u64)).await.unwrap();
        streams.push(stream);
    }
    for (i, stream) in streams.iter_mut().enumerate().rev() {
        let mut first = [0u8; 1000];
        tokio::time::timeout(PATIENCE, stream.read_exact(&mut first))
            .await
            .unwrap_or_else(|_| panic!("client {i} got no echo while the others were open"))
            .unwrap();
        assert!(
            first == pattern(1000, i as u64)[..],
            "client {i}'s first part"
        );
    }
    for (i, mut stream) in streams.into_iter().enumerate() {
        let rest = pattern(64 * 1024, 100 + i as u64);
        stream.write_all(&rest).await.unwrap();
        stream.shutdown().await.unwrap();
        let mut back = Vec::new();
        stream.read_to_end(&mut back).await.unwrap();
        assert!(back == rest, "client {i}'s rest comes back intact");
    }
    let done = server.finish().await;
    assert_eq!(done.code, 0, "stderr: {}", done.stderr);
    assert_eq!(done.stdout, format!("listening on {addr}\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_p3_echo_server_serves_connections_at_once() {
    p3_echo_server_serves_connections_at_once("python-p3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_p3_echo_server_serves_connections_at_once() {
    p3_echo_server_serves_connections_at_once("js-p3").await;
}

/// 0.3 guests of Python, JavaScript and Rust talk to each other and to 0.2 guests, each on
/// its own front of the same host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_clients_and_servers_of_different_languages_talk_to_each_other() {
    let p3 = |lang, name| (format!("{lang} 0.3"), lang_guest(lang, name));
    let pairs: [((String, PathBuf), (String, PathBuf)); 4] = [
        (p3("python-p3", "tcp-client"), p3("js-p3", "echo-server")),
        (
            p3("js-p3", "tcp-client"),
            ("rust 0.3".into(), guest("p3-echo-server")),
        ),
        (
            ("rust 0.3".into(), guest("p3-tcp-client")),
            p3("python-p3", "echo-server"),
        ),
        (
            ("c 0.2".into(), lang_guest("c", "tcp-client")),
            p3("js-p3", "echo-server"),
        ),
    ];
    for ((client_name, client), (server_name, server)) in pairs {
        let listen = policy(&[(Allow, "listen", "127.0.0.1:0")]);
        let server_run = Running::start_path(&server, &["127.0.0.1:0", "1"], ctx(listen));
        let addr = server_run.listening().await;
        let connect = policy(&[(Allow, "connect", &addr.to_string())]);
        let message = format!("from {client_name} to {server_name}");
        let done = Running::start_path(&client, &[&addr.to_string(), &message], ctx(connect))
            .finish()
            .await;
        assert_eq!(done.code, 0, "{client_name} client: {}", done.stderr);
        assert_eq!(done.stdout, message, "{server_name} server echoed it");
        let served = server_run.finish().await;
        assert_eq!(served.code, 0, "{server_name} server: {}", served.stderr);
    }
}

/// Guests of different languages talk to each other through capnet: a Python client to a C
/// server, a C client to a JavaScript server, a JavaScript client to a Python server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_and_servers_of_different_languages_talk_to_each_other() {
    for (client_lang, server_lang) in [("python", "c"), ("c", "js"), ("js", "python")] {
        let listen = policy(&[(Allow, "listen", "127.0.0.1:0")]);
        let server = Running::start_path(
            &lang_guest(server_lang, "echo-server"),
            &["127.0.0.1:0", "1"],
            ctx(listen),
        );
        let addr = server.listening().await;
        let connect = policy(&[(Allow, "connect", &addr.to_string())]);
        let message = format!("from {client_lang} to {server_lang}");
        let client = Running::start_path(
            &lang_guest(client_lang, "tcp-client"),
            &[&addr.to_string(), &message],
            ctx(connect),
        );
        let done = client.finish().await;
        assert_eq!(done.code, 0, "{client_lang} client: {}", done.stderr);
        assert_eq!(done.stdout, message, "{server_lang} server echoed it");
        let served = server.finish().await;
        assert_eq!(served.code, 0, "{server_lang} server: {}", served.stderr);
    }
}
