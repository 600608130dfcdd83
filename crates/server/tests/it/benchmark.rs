//! The benchmark commands against a real server: every phase of `strongroom bench` succeeds
//! against Strongroom itself, and `strongroom bench --in-process` serves requests without a socket.

use std::time::Duration;

use crate::harness::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_benchmark_phase_succeeds_against_the_server() {
    let server = TestServer::start().await;
    let options = strongroom_bench::BenchOptions {
        endpoint: server.endpoint(),
        connections: 2,
        duration: Duration::from_millis(200),
        region: "us-east-1".to_owned(),
        access_key_id: "test".to_owned(),
        secret_access_key: "test".to_owned(),
        key_id: None,
        asymmetric: false,
    };
    let report = strongroom_bench::run(&options).await.unwrap();
    let names: Vec<&str> = report.rows.iter().map(|row| row.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "no-op",
            "no-op echo (Encrypt's body)",
            "Encrypt",
            "Decrypt",
            "GenerateDataKey"
        ]
    );
    for row in &report.rows {
        assert!(row.requests > 0, "{row:?}");
        // A refused signature, a wrong body or a missing echo route would show up as errors.
        assert_eq!(row.errors, 0, "{row:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_process_benchmark_serves_each_operation() {
    let rows = strongroom_server::edge_bench::run(Duration::from_millis(50))
        .await
        .unwrap();
    let names: Vec<&str> = rows.iter().map(|row| row.name).collect();
    assert_eq!(names, ["Encrypt", "Decrypt", "GenerateDataKey"]);
    for row in &rows {
        // At least one batch of 1,000 requests, each answered 200 (the run fails otherwise).
        assert!(row.requests >= 1_000, "{row:?}");
        assert!(row.median > Duration::ZERO, "{row:?}");
    }
    let table = strongroom_server::edge_bench::to_markdown(&rows);
    assert_eq!(table.lines().count(), 5, "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bench_command_runs_its_client_on_the_threads_asked_for() {
    let server = TestServer::start().await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args(["bench", "--endpoint", &server.endpoint()])
        .args([
            "--connections",
            "2",
            "--duration",
            "1",
            "--client-threads",
            "1",
        ])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.starts_with("Client: 1 thread(s), 2 connection(s), 1 s per phase."),
        "{stdout}"
    );
    let encrypt = stdout
        .lines()
        .find(|line| line.starts_with("| Encrypt |"))
        .unwrap_or_else(|| panic!("{stdout}"));
    let cells: Vec<&str> = encrypt.split('|').map(str::trim).collect();
    // | Encrypt | requests | errors | ...
    assert_ne!(cells[2], "0", "{encrypt}");
    assert_eq!(cells[3], "0", "{encrypt}");

    let refused = tokio::process::Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args([
            "bench",
            "--endpoint",
            &server.endpoint(),
            "--client-threads",
            "0",
        ])
        .output()
        .await
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--client-threads"), "{stderr}");
}
