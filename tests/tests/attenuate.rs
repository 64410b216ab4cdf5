//! `capnet:sockets/attenuate` over real sockets: a derived network is never wider than its
//! parent, derivation nests, and a revoker takes a derived network back, closing what was
//! opened through it.

use capnet::policy::Verdict::Allow;
use capnet_tests::{Running, assert_unreached, ctx, policy};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// The line the guest printed for `step`.
fn line<'a>(stdout: &'a str, step: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(&format!("{step}:")))
        .unwrap_or_else(|| panic!("no line for {step:?} in:\n{stdout}"))
}

async fn listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (listener, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_derived_network_given_wider_rules_than_its_parent_gains_nothing() {
    let (allowed, allowed_addr) = listener().await;
    let (other, other_addr) = listener().await;
    let policy = policy(&[(Allow, "connect", &allowed_addr)]);
    let derive = "derive wide root +all:any";
    let to_allowed = format!("connect wide {allowed_addr}");
    let to_other = format!("connect wide {other_addr}");
    let guest = Running::start("attenuate", &[derive, &to_allowed, &to_other], ctx(policy));
    let done = guest.finish().await;

    assert_eq!(done.code, 0, "stderr: {}", done.stderr);
    assert_eq!(line(&done.stdout, derive), format!("{derive}: ok"));
    assert_eq!(
        line(&done.stdout, &to_allowed),
        format!("{to_allowed}: ok 0")
    );
    assert_eq!(
        line(&done.stdout, &to_other),
        format!("{to_other}: error access-denied")
    );
    allowed.accept().await.expect("the allowed connect arrived");
    assert_unreached(&other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_derived_network_allows_only_what_its_own_rules_name() {
    let (kept, kept_addr) = listener().await;
    let (dropped, dropped_addr) = listener().await;
    let policy = policy(&[(Allow, "connect", "loopback")]);
    let derive = format!("derive narrow root +connect:{kept_addr}");
    let steps = [
        derive.clone(),
        format!("connect narrow {kept_addr}"),
        format!("connect narrow {dropped_addr}"),
        format!("connect root {dropped_addr}"),
    ];
    let args: Vec<&str> = steps.iter().map(String::as_str).collect();
    let done = Running::start("attenuate", &args, ctx(policy))
        .finish()
        .await;

    assert_eq!(line(&done.stdout, &steps[1]), format!("{}: ok 0", steps[1]));
    assert_eq!(
        line(&done.stdout, &steps[2]),
        format!("{}: error access-denied", steps[2])
    );
    assert_eq!(
        line(&done.stdout, &steps[3]),
        format!("{}: ok 1", steps[3]),
        "the parent keeps its own rights"
    );
    kept.accept().await.unwrap();
    dropped
        .accept()
        .await
        .expect("the parent's connect arrived");
    assert_unreached(&dropped).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_derivations_intersect_and_revoking_the_outer_one_revokes_the_inner() {
    let (a, a_addr) = listener().await;
    let (b, b_addr) = listener().await;
    let policy = policy(&[(Allow, "connect", "loopback")]);
    let steps = [
        format!("derive outer root +connect:{a_addr} +connect:{b_addr}"),
        format!("derive inner outer +connect:{b_addr} +connect:127.0.0.1:1"),
        format!("connect inner {a_addr}"),
        "connect inner 127.0.0.1:1".to_owned(),
        format!("connect inner {b_addr}"),
        "revoke outer".to_owned(),
        format!("connect inner {b_addr}"),
        "read 0".to_owned(),
    ];
    let args: Vec<&str> = steps.iter().map(String::as_str).collect();
    let guest = Running::start("attenuate", &args, ctx(policy));
    let (mut held, _) = tokio::time::timeout(Duration::from_secs(60), b.accept())
        .await
        .expect("the inner network's connect arrived")
        .unwrap();
    let done = guest.finish().await;
    let out = &done.stdout;

    assert_eq!(
        line(out, &steps[2]),
        format!("{}: error access-denied", steps[2])
    );
    assert_eq!(
        line(out, &steps[3]),
        format!("{}: error access-denied", steps[3])
    );
    assert_eq!(line(out, &steps[4]), format!("{}: ok 0", steps[4]));
    assert_eq!(line(out, "revoke outer"), "revoke outer: ok");
    // `connect inner B` is printed twice: before and after the revocation.
    let after: Vec<&str> = out.lines().filter(|l| l.starts_with(&steps[6])).collect();
    assert_eq!(
        after.last().copied(),
        Some(&*format!("{}: error access-denied", steps[6]))
    );
    assert!(line(out, "read 0").starts_with("read 0: ok eof"), "{out}");
    let mut rest = Vec::new();
    let end = tokio::time::timeout(Duration::from_secs(30), held.read_to_end(&mut rest))
        .await
        .expect("the revoked connection ends");
    assert!(
        matches!(end, Ok(0)) || end.is_err(),
        "the peer sees the end: {end:?}"
    );
    assert_unreached(&a).await;
    assert_unreached(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_the_host_cannot_read_is_an_error_value_naming_it() {
    let policy = policy(&[(Allow, "connect", "loopback")]);
    let bad = "derive d root +connect:127.0.0.1:90-80";
    let unknown = "derive e root +teleport:any";
    let done = Running::start("attenuate", &[bad, unknown], ctx(policy))
        .finish()
        .await;

    assert_eq!(done.code, 0, "nothing traps; stderr: {}", done.stderr);
    assert_eq!(
        line(&done.stdout, bad),
        format!(
            "{bad}: error rule \"connect 127.0.0.1:90-80\": port range start is above its end (write 80-90)"
        )
    );
    assert!(
        line(&done.stdout, unknown).starts_with(&format!(
            "{unknown}: error rule \"teleport any\": unknown use \"teleport\""
        )),
        "{}",
        done.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoking_reload_closes_the_listener_and_connection_the_new_policy_refuses() {
    use tokio::io::AsyncWriteExt;
    let ctx = ctx(policy(&[(Allow, "listen", "127.0.0.1:0")]));
    let handle = ctx.policy_handle();
    let guest = Running::start("echo-server", &["127.0.0.1:0"], ctx);
    let addr = guest.listening().await;
    let mut held = tokio::net::TcpStream::connect(addr).await.unwrap();
    held.write_all(b"open").await.unwrap();
    let mut echo = [0u8; 4];
    held.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"open");

    // The new policy refuses both the listen and the peer.
    let (_, closed) = handle.replace_revoking(policy(&[(Allow, "connect", "127.0.0.1:1")]));
    assert_eq!(closed, 2, "the listener and the accepted connection");
    let mut rest = Vec::new();
    let end = tokio::time::timeout(Duration::from_secs(30), held.read_to_end(&mut rest))
        .await
        .expect("the revoked connection ends");
    assert!(matches!(end, Ok(0)) || end.is_err(), "{end:?}");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the revoked listener takes no one"
    );
    // What a plain replace leaves alone, a revoking one with the same policy leaves too.
    assert_eq!(handle.replace_revoking(handle.current()).1, 0);
}
