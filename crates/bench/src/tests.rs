//! Unit tests for percentiles and the Markdown report, plus a short run against a fake server
//! on the loopback interface that checks every request's signature.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::connection::Endpoint;
use crate::report::{self, Samples, format_duration, percentile};
use crate::{BenchOptions, Report, Row};

const ACCESS_KEY_ID: &str = "AKIDBENCH";
const SECRET: &str = "bench-secret";

fn micros(values: &[u64]) -> Vec<Duration> {
    values
        .iter()
        .map(|&value| Duration::from_micros(value))
        .collect()
}

#[test]
fn percentiles_use_the_nearest_rank() {
    assert_eq!(percentile(&[], 50), Duration::ZERO);
    assert_eq!(percentile(&micros(&[7]), 50), Duration::from_micros(7));
    assert_eq!(percentile(&micros(&[7]), 99), Duration::from_micros(7));
    let hundred: Vec<u64> = (1..=100).collect();
    assert_eq!(percentile(&micros(&hundred), 50), Duration::from_micros(50));
    assert_eq!(percentile(&micros(&hundred), 99), Duration::from_micros(99));
    assert_eq!(
        percentile(&micros(&hundred), 100),
        Duration::from_micros(100)
    );
    assert_eq!(
        percentile(&micros(&[1, 2, 3, 4]), 50),
        Duration::from_micros(2)
    );
    assert_eq!(
        percentile(&micros(&[1, 2, 3, 4]), 99),
        Duration::from_micros(4)
    );
}

#[test]
fn rows_sort_merged_samples() {
    let mut samples = Samples {
        requests: 3,
        errors: 1,
        latencies: micros(&[300, 100]),
    };
    samples.merge(Samples {
        requests: 2,
        errors: 0,
        latencies: micros(&[200, 500]),
    });
    let row = report::row("Encrypt", samples, Duration::from_secs(2));
    assert_eq!(
        row,
        Row {
            name: "Encrypt".to_owned(),
            requests: 5,
            errors: 1,
            per_second: 2.0,
            p50: Duration::from_micros(200),
            p99: Duration::from_micros(500),
        }
    );
    let empty = report::row("no-op", Samples::default(), Duration::ZERO);
    assert_eq!(empty.per_second, 0.0);
    assert_eq!(empty.p99, Duration::ZERO);
}

#[test]
fn durations_are_formatted_with_a_fitting_unit() {
    assert_eq!(format_duration(Duration::from_nanos(2_500)), "2.5 µs");
    assert_eq!(format_duration(Duration::from_micros(250)), "250 µs");
    assert_eq!(format_duration(Duration::from_micros(1_250)), "1.25 ms");
    assert_eq!(format_duration(Duration::from_millis(1_500)), "1.50 s");
}

fn row(name: &str, per_second: f64, p99_micros: u64) -> Row {
    Row {
        name: name.to_owned(),
        requests: 1000,
        errors: 0,
        per_second,
        p50: Duration::from_micros(p99_micros / 2),
        p99: Duration::from_micros(p99_micros),
    }
}

#[test]
fn markdown_compares_every_row_with_the_noop() {
    let report = Report {
        rows: vec![
            row("no-op", 40_000.0, 100),
            row("Encrypt", 10_000.0, 400),
            Row {
                errors: 3,
                ..row("Decrypt", 20_000.0, 250)
            },
        ],
    };
    assert_eq!(
        report.to_markdown(),
        "\
| Operation | Requests | Errors | Req/s | p50 | p99 | Req/s vs no-op | p99 vs no-op |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
| no-op | 1000 | 0 | 40000 | 50 µs | 100 µs | 1.00x | 1.00x |
| Encrypt | 1000 | 0 | 10000 | 200 µs | 400 µs | 0.25x | 4.00x |
| Decrypt | 1000 | 3 | 20000 | 125 µs | 250 µs | 0.50x | 2.50x |
"
    );
}

#[test]
fn markdown_without_a_usable_noop_has_no_ratios() {
    let missing = Report {
        rows: vec![row("Encrypt", 10_000.0, 400)],
    };
    assert!(missing.to_markdown().ends_with("| n/a | n/a |\n"));
    let idle = Report {
        rows: vec![row("no-op", 0.0, 0), row("Encrypt", 10_000.0, 400)],
    };
    assert!(idle.to_markdown().ends_with("| 400 µs | n/a | n/a |\n"));
}

#[test]
fn endpoints_are_parsed() {
    let endpoint = Endpoint::parse("http://127.0.0.1:4566").unwrap();
    assert_eq!(endpoint.address, "127.0.0.1:4566");
    assert_eq!(endpoint.authority, "127.0.0.1:4566");
    let endpoint = Endpoint::parse("http://localhost/").unwrap();
    assert_eq!(endpoint.address, "localhost:80");
    assert_eq!(endpoint.authority, "localhost");
    let endpoint = Endpoint::parse("http://[::1]:8080").unwrap();
    assert_eq!(endpoint.address, "[::1]:8080");
    for bad in [
        "https://127.0.0.1:4566",
        "127.0.0.1:4566",
        "/path",
        "not a url",
    ] {
        assert!(Endpoint::parse(bad).is_err(), "{bad}");
    }
}

// A short run against a fake server.

/// Answers like Strongroom would, after verifying the signature of every KMS call.
async fn fake_kms(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return Ok(respond(StatusCode::BAD_REQUEST, "")),
    };
    if parts.uri.path() == "/__strongroom/noop" {
        // The echo must carry a body: the phase exists to move Encrypt-sized messages.
        if parts.method == http::Method::POST && body.is_empty() {
            return Ok(respond(StatusCode::BAD_REQUEST, "empty echo"));
        }
        return Ok(Response::new(Full::new(body)));
    }
    let auth = match strongroom_sigv4::parse_authorization(&parts.headers) {
        Ok(auth) => auth,
        Err(err) => return Ok(respond(StatusCode::BAD_REQUEST, &err.to_string())),
    };
    let key = strongroom_sigv4::SigningKey::derive(
        SECRET.as_bytes(),
        auth.date,
        auth.region,
        auth.service,
    );
    let verified = strongroom_sigv4::verify(
        &parts.method,
        &parts.uri,
        &parts.headers,
        &body,
        &auth,
        &key,
        SystemTime::now(),
    );
    if let Err(err) = verified {
        return Ok(respond(StatusCode::BAD_REQUEST, &err.to_string()));
    }
    let request: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(_) => return Ok(respond(StatusCode::BAD_REQUEST, "not JSON")),
    };
    let target = parts.headers["x-amz-target"].to_str().unwrap_or("");
    let response = match target {
        "TrentService.CreateKey" => serde_json::json!({ "KeyMetadata": { "KeyId": "key-1" } }),
        "TrentService.Encrypt" if request["KeyId"] == "key-1" => {
            serde_json::json!({ "KeyId": "key-1", "CiphertextBlob": "Y2lwaGVydGV4dA==" })
        }
        "TrentService.Decrypt" if request["CiphertextBlob"] == "Y2lwaGVydGV4dA==" => {
            serde_json::json!({ "KeyId": "key-1", "Plaintext": "cGxhaW50ZXh0" })
        }
        "TrentService.GenerateDataKey" if request["KeySpec"] == "AES_256" => {
            serde_json::json!({ "KeyId": "key-1", "Plaintext": "a2V5", "CiphertextBlob": "YmxvYg==" })
        }
        _ => return Ok(respond(StatusCode::BAD_REQUEST, "unexpected request")),
    };
    Ok(respond(StatusCode::OK, &response.to_string()))
}

fn respond(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response
}

async fn start_fake_kms() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(fake_kms))
                    .await;
            });
        }
    });
    address
}

fn options(address: SocketAddr, secret: &str) -> BenchOptions {
    BenchOptions {
        endpoint: format!("http://{address}"),
        connections: 2,
        duration: Duration::from_millis(150),
        region: "us-east-1".to_owned(),
        access_key_id: ACCESS_KEY_ID.to_owned(),
        secret_access_key: secret.to_owned(),
        key_id: None,
        asymmetric: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_run_against_a_fake_server_has_no_errors() {
    let address = start_fake_kms().await;
    let report = crate::run(&options(address, SECRET)).await.unwrap();
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
        assert_eq!(row.errors, 0, "{row:?}");
        assert!(row.per_second > 0.0, "{row:?}");
        assert!(row.p50 <= row.p99, "{row:?}");
    }
    let markdown = report.to_markdown();
    assert_eq!(markdown.lines().count(), 7, "{markdown}");

    let mut given_key = options(address, SECRET);
    given_key.key_id = Some("key-1".to_owned());
    given_key.duration = Duration::from_millis(20);
    let report = crate::run(&given_key).await.unwrap();
    assert!(report.rows.iter().all(|row| row.errors == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_failures_are_errors() {
    let address = start_fake_kms().await;
    let err = crate::run(&options(address, "wrong-secret"))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("does not match"), "{err:#}");

    let mut no_connections = options(address, SECRET);
    no_connections.connections = 0;
    assert!(crate::run(&no_connections).await.is_err());

    // A port nobody listens on.
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let err = crate::run(&options(closed, SECRET)).await.unwrap_err();
    assert!(format!("{err:#}").contains("connect to"), "{err:#}");
}

#[test]
fn in_process_comparison_pairs_rows_by_name() {
    let report = Report {
        rows: vec![row("no-op", 1000.0, 100), row("Sign RSA_2048", 250.0, 900)],
    };
    let raw = [
        crate::RawRow {
            name: "Sign RSA_2048".to_owned(),
            per_second: 500.0,
        },
        crate::RawRow {
            name: "GenerateMac HMAC_256".to_owned(),
            per_second: 9000.0,
        },
    ];
    let table = report.compare_in_process(&raw);
    assert!(
        table.contains("| Sign RSA_2048 | 250 | 500 | 0.50x |"),
        "{table}"
    );
    assert!(
        !table.contains("GenerateMac"),
        "rows that were not served are left out: {table}"
    );
}

#[test]
fn in_process_measurements_count_operations() {
    let rows = crate::measure_in_process(std::time::Duration::from_millis(50)).expect("measures");
    assert_eq!(rows.len(), 5);
    for row in rows {
        assert!(row.per_second > 0.0, "{row:?}");
    }
}
