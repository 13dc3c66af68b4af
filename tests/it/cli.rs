//! The `ballast` binary: `check` output and exit codes, config path resolution, `serve` start-up
//! and SIGTERM.

#![expect(clippy::unwrap_used, reason = "helpers: a failed unwrap is a failed test")]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_ballast");

fn ballast(args: &[&str], dir: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("BALLAST_CONFIG")
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

const VALID: &str = "
server: { workers: 3 }
providers:
  openai: { kind: openai, base_url: 'https://api.openai.com/v1', api_key: sk-live-SECRET-1, headers: { x-extra: hdr-SECRET-2 } }
  offline: { kind: mock, latency: 40ms }
models:
  gpt-4o-mini:
    targets:
      - { provider: openai, model: gpt-4o-mini }
      - { provider: offline, model: mock-mini }
";

#[test]
fn check_prints_the_route_table_of_a_valid_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "ok.yaml", VALID);

    let output = ballast(&["check", "--config", &path], dir.path());

    assert!(output.status.success(), "{output:?}");
    let text = stdout(&output);
    for expected in [
        "OK",
        "gpt-4o-mini",
        "1. openai → gpt-4o-mini (openai)",
        "2. offline → mock-mini (mock)",
        "https://api.openai.com/v1",
        "latency 40ms",
        "retry: 2 × backoff 250ms..8s",
        "breaker: open 30s after 5 failures",
        "gpt-4o-mini (routing ordered, cache on)",
        "cache: memory (max_entries 100000, max_bytes 256MiB), ttl 1d, stale_ttl 7d",
        "shutdown_grace 30s, workers 3",
        "max_connections 10000, max_body_size 10MiB",
        "header_timeout 10s",
    ] {
        assert!(text.contains(expected), "`{expected}` missing from:\n{text}");
    }
}

#[test]
fn check_shows_the_apis_each_alias_serves_and_how() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "apis.yaml",
        "
providers:
  openai: { kind: openai, base_url: 'https://api.openai.com/v1', api_key: k1 }
  local: { kind: openai, base_url: 'http://127.0.0.1:8000/v1' }
  claude: { kind: anthropic, base_url: 'https://api.anthropic.com', api_key: k2 }
models:
  mixed:
    targets: [ { provider: openai, model: gpt-4o-mini }, { provider: claude, model: claude-haiku-4-5 } ]
  local-only:
    targets: [ { provider: local, model: llama } ]
",
    );

    let output = ballast(&["check", "--config", &path], dir.path());

    assert!(output.status.success(), "{output:?}");
    let text = stdout(&output);
    for expected in [
        "serves: chat (translated on 1 of 2), messages (translated on 1 of 2), responses (translated on 1 of 2), embeddings (1 of 2 targets)",
        "serves: chat, messages (translated), responses (translated), embeddings",
        "(key set, native Responses)",
    ] {
        assert!(text.contains(expected), "`{expected}` missing from:\n{text}");
    }
    assert_eq!(text.matches("native Responses").count(), 1, "only api.openai.com by default");
}

#[test]
fn check_output_never_contains_keys_or_header_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "ok.yaml", VALID);

    let output = ballast(&["check", "--config", &path], dir.path());

    let everything = format!("{}{}", stdout(&output), String::from_utf8_lossy(&output.stderr));
    assert!(!everything.contains("SECRET"), "{everything}");
}

#[test]
fn check_output_hides_url_credentials_and_query_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "urls.yaml",
        "
providers:
  up: { kind: openai, base_url: 'https://user:pa@ss-SECRET@api.example/v1?key=SECRET-q' }
models:
  m: { targets: [{ provider: up, model: m }] }
cache: { backend: redis, redis_url: 'redis://:pw@d-SECRET@cache:6379' }
",
    );

    let output = ballast(&["check", "--config", &path], dir.path());

    assert!(output.status.success(), "{output:?}");
    let text = stdout(&output);
    assert!(!text.contains("SECRET") && !text.contains("user"), "{text}");
    assert!(text.contains("https://***@api.example/v1?key=***"), "{text}");
    assert!(text.contains("redis at redis://***@cache:6379"), "{text}");
}

#[test]
fn config_problems_about_urls_do_not_echo_their_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "bad-urls.yaml",
        "
providers:
  a: { kind: openai, base_url: 'ftp://user:SECRET-1@host/v1' }
  b: { kind: openai, base_url: 'https://user:SECRET-2@[bad/v1' }
models:
  m: { targets: [{ provider: a, model: m }] }
cache: { backend: redis, redis_url: 'http://:SECRET-3@cache:6379' }
",
    );

    let output = ballast(&["check", "--config", &path], dir.path());

    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let text = format!("{}{}", stdout(&output), String::from_utf8_lossy(&output.stderr));
    assert!(!text.contains("SECRET"), "{text}");
    for expected in ["providers.a.base_url", "providers.b.base_url", "cache.redis_url"] {
        assert!(text.contains(expected), "`{expected}` missing from:\n{text}");
    }
}

#[test]
fn check_lists_every_problem_with_its_yaml_path_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "bad.yaml",
        "
server: { listen: not-an-address, request_timeout: soon }
providers:
  up: { kind: openai, base_url: 'https://x.example/v1', api_key: '${MISSING_KEY}' }
  odd: { kind: mock, failure_rate: 3 }
models:
  m: { targets: [ { provider: nowhere, model: x } ] }
",
    );

    let output = ballast(&["check", "--config", &path], dir.path());

    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    for expected in [
        "5 problem(s)",
        "server.listen:",
        "server.request_timeout:",
        "providers.up.api_key: environment variable `MISSING_KEY` is not set",
        "providers.odd.failure_rate:",
        "models.m.targets[0].provider: unknown provider `nowhere`",
    ] {
        assert!(text.contains(expected), "`{expected}` missing from:\n{text}");
    }
}

#[test]
fn the_config_path_comes_from_the_flag_then_the_environment_then_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let flag = write(dir.path(), "flag.yaml", VALID);
    let from_env = write(dir.path(), "env.yaml", VALID);
    write(dir.path(), "config/ballast.yaml", VALID);

    let by_flag = Command::new(BIN)
        .args(["check", "--config", &flag])
        .env("BALLAST_CONFIG", &from_env)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(stdout(&by_flag).contains("flag.yaml: OK"), "{}", stdout(&by_flag));
    let by_env = Command::new(BIN)
        .arg("check")
        .env("BALLAST_CONFIG", &from_env)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(stdout(&by_env).contains("env.yaml: OK"), "{}", stdout(&by_env));
    let by_default = ballast(&["check"], dir.path());
    assert!(stdout(&by_default).contains("config/ballast.yaml: OK"), "{}", stdout(&by_default));
}

#[test]
fn the_shipped_configs_pass_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let demo = ballast(&["check", "--config", "config/demo.yaml"], root);
    assert!(demo.status.success(), "{}", stdout(&demo));
    let shown = stdout(&demo);
    assert!(shown.contains("    answer checks: empty, invalid_json, refusal\n"), "{shown}");
    assert!(shown.contains("(mock, context window 200000 tokens)"), "{shown}");
    let real = Command::new(BIN)
        .args(["check", "--config", "config/ballast.yaml"])
        .current_dir(root)
        .env("OPENAI_API_KEY", "sk-placeholder")
        .output()
        .unwrap();
    assert!(real.status.success(), "{}", stdout(&real));
}

#[test]
fn serve_refuses_an_invalid_config_and_prints_the_problems() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bad.yaml", "providers: {}\nmodels: {}\n");

    let output = ballast(&["serve", "--config", &path, "--listen", "127.0.0.1:0"], dir.path());

    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("providers: at least one provider is required"), "{stderr}");
}

#[test]
fn serve_is_the_default_command_and_exits_0_on_sigterm() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(BIN)
        .args(["--config", "config/demo.yaml", "--listen", "127.0.0.1:0"])
        .current_dir(root)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Not a terminal, so the logs are JSON; the `listening` line names the port.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let listening =
        lines.by_ref().take(20).map(Result::unwrap).find(|line| line.contains("\"listening\""));
    let line = listening.expect("a `listening` log line");
    let log: serde_json::Value = serde_json::from_str(&line).unwrap();
    let addr = log["fields"]["addr"].as_str().unwrap().to_owned();
    assert!(std::net::TcpStream::connect(&addr).is_ok(), "serving on {addr}");

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let (done, exited) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(child.wait().unwrap()));
    let status = exited.recv_timeout(Duration::from_secs(10)).expect("ballast stops within 10 s");
    assert_eq!(status.code(), Some(0));
}
