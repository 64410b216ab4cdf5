//! `http-hello` on capnet answers curl, the client a person would use.

use capnet::policy::Verdict::Allow;
use capnet_tests::{Running, ctx, policy};
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_hello_answers_curl() {
    let policy = policy(&[(Allow, "listen", "127.0.0.1:0")]);
    let guest = Running::start("http-hello", &["127.0.0.1:0", "2"], ctx(policy));
    let addr = guest.listening().await;

    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-i", &format!("http://{addr}/")])
        .output()
        .await
        .expect("curl is installed (.ci/run installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("content-length: 26\r\n"), "{text}");
    assert!(
        text.ends_with("\r\n\r\nhello from a capnet guest\n"),
        "{text}"
    );

    let head = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-I", &format!("http://{addr}/x")])
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&head.stdout).starts_with("HTTP/1.1 200 OK"));

    let done = guest.finish().await;
    assert_eq!(done.code, 0, "stderr: {}", done.stderr);
}
