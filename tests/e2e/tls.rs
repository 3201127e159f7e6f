//! TLS and authentication against a real mosquitto, with certificates the
//! test makes with openssl: the right CA, a wrong CA, client certificates,
//! a server name override, and wrong and right passwords.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::{find_program, free_port, test_config, wait_for, wait_retained, Agent, Broker};

/// A test PKI: a CA, a server certificate for `localhost`, 127.0.0.1 and
/// `broker.test`, a client certificate, and an unrelated second CA.
struct Pki {
    ca: PathBuf,
    other_ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn openssl(dir: &Path, args: &[String]) {
    let output = Command::new(find_program("openssl", "openssl", &[]))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

fn make_pki(dir: &Path) -> Pki {
    const EC_KEY: [&str; 5] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    for (name, subject) in [("ca", "/CN=majortom test CA"), ("other-ca", "/CN=someone else's CA")] {
        let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
        let mut args = strings(&["req", "-x509"]);
        args.extend(strings(&EC_KEY));
        args.extend(strings(&[
            "-keyout", &key, "-out", &pem, "-days", "2", "-subj", subject,
        ]));
        openssl(dir, &args);
    }
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1,DNS:broker.test\n",
    )
    .expect("write server.ext");
    std::fs::write(
        dir.join("client.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .expect("write client.ext");
    for (name, subject) in [("server", "/CN=localhost"), ("client", "/CN=majortom")] {
        let (key, csr, pem, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        let mut args = strings(&["req"]);
        args.extend(strings(&EC_KEY));
        args.extend(strings(&["-keyout", &key, "-out", &csr, "-subj", subject]));
        openssl(dir, &args);
        openssl(
            dir,
            &strings(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ]),
        );
    }
    Pki {
        ca: dir.join("ca.pem"),
        other_ca: dir.join("other-ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
    }
}

/// A mosquitto with a TLS listener (`require_certificate` asks clients for
/// one) and a plain one on `plain_port` for the test's observers.
fn tls_broker(pki_dir: &tempfile::TempDir, require_certificate: bool, plain_port: u16) -> (Broker, Pki) {
    let pki = make_pki(pki_dir.path());
    let settings = format!(
        "allow_anonymous true\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {require_certificate}\n\
         listener {plain_port} 127.0.0.1\nallow_anonymous true\n",
        pki.ca.display(),
        pki.server_cert.display(),
        pki.server_key.display()
    );
    (Broker::start_with(free_port(), &settings), pki)
}

async fn connected(agent: &Agent) {
    crate::support::wait_for("the agent to connect", Duration::from_secs(10), || {
        (agent.get_json("/api/health")["mqtt"]["connected"] == true).then_some(())
    })
    .await;
}

fn tls_config(node: &str, port: u16, host: &str, tls: &str) -> String {
    test_config(node, port, "[system]\ninterval_s = 3600\n")
        .replace("host = \"127.0.0.1\"", &format!("host = \"{host}\""))
        .replace("[web]", &format!("[mqtt.tls]\n{tls}\n\n[web]"))
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_the_brokers_ca_should_connect_and_publish() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = free_port();
    let (broker, pki) = tls_broker(&dir, false, plain);
    let config = tls_config(
        "tls",
        broker.port,
        "localhost",
        &format!("ca_file = \"{}\"", pki.ca.display()),
    );
    let _agent = Agent::start(&config).await;
    // What went in over TLS is on the broker, read back on the plain port.
    assert_eq!(
        wait_retained(plain, "majortom/tls/status", Duration::from_secs(10)).await,
        "online"
    );
    wait_retained(
        plain,
        "homeassistant/sensor/tls/memory_used/config",
        Duration::from_secs(5),
    )
    .await;
    wait_retained(plain, "majortom/tls/memory_used/state", Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_ca_should_be_a_clear_certificate_error_retried_with_backoff() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (broker, pki) = tls_broker(&dir, false, free_port());
    let config = tls_config(
        "badca",
        broker.port,
        "localhost",
        &format!("ca_file = \"{}\"", pki.other_ca.display()),
    );
    let mut agent = Agent::start(&config).await;
    let cpu_before = agent.cpu_time();
    // Kept: how often it retries and what CPU it spends over a span of
    // time are what is under test.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(agent.is_running());
    let log = agent.log();
    assert!(log.contains("cannot connect to MQTT broker"), "{log}");
    assert!(
        log.contains("invalid peer certificate"),
        "the error must say it is the certificate: {log}"
    );
    assert!(log.contains("mqtt.tls.ca_file"), "and what to check: {log}");
    let attempts = log.matches("MQTT connection attempt failed").count() + 1;
    assert!((2..=8).contains(&attempts), "{attempts} attempts in 4 s: {log}");
    assert!(
        agent.cpu_time() - cpu_before < Duration::from_millis(800),
        "spinning on TLS failures"
    );
    assert_eq!(agent.get_json("/api/health")["mqtt"]["connected"], false);
}

/// The build speaks TLS 1.3 only: a broker held to TLS 1.2 is refused
/// with the cause and the fix, not a bare handshake error. (mosquitto's
/// `tls_version` is a minimum, so the "broker" is openssl's TLS 1.2-only
/// server: the handshake is all that is tried.)
#[tokio::test(flavor = "multi_thread")]
async fn a_broker_limited_to_tls_1_2_should_be_named_as_such() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = make_pki(dir.path());
    let port = free_port();
    let mut server = std::process::Command::new("openssl")
        .args(["s_server", "-quiet", "-tls1_2", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(&pki.server_cert)
        .arg("-key")
        .arg(&pki.server_key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server (apt install openssl)");
    crate::support::wait_for("openssl s_server to listen", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(drop)
    })
    .await;
    let config = tls_config(
        "tls12",
        port,
        "localhost",
        &format!("ca_file = \"{}\"", pki.ca.display()),
    );
    let agent = Agent::start(&config).await;
    crate::support::wait_for("the TLS failure in the log", Duration::from_secs(10), || {
        agent.log().contains("cannot connect to MQTT broker").then_some(())
    })
    .await;
    let log = agent.log();
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        log.contains("offers only TLS 1.2 or older") && log.contains("tls_version"),
        "the cause and the fix: {log}"
    );
    assert_eq!(agent.get_json("/api/health")["mqtt"]["connected"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_that_wants_a_client_certificate_should_get_ours() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = free_port();
    let (broker, pki) = tls_broker(&dir, true, plain);
    let with_cert = format!(
        "ca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"",
        pki.ca.display(),
        pki.client_cert.display(),
        pki.client_key.display()
    );
    let agent = Agent::start(&tls_config("mtls", broker.port, "127.0.0.1", &with_cert)).await;
    connected(&agent).await;
    assert_eq!(
        wait_retained(plain, "majortom/mtls/status", Duration::from_secs(10)).await,
        "online"
    );

    // Without one, the broker refuses, and the agent says so and retries.
    let without = format!("ca_file = \"{}\"", pki.ca.display());
    let refused = Agent::start(&tls_config("nocert", broker.port, "127.0.0.1", &without)).await;
    wait_for("the refusal to be logged", Duration::from_secs(10), || {
        refused.log().contains("cannot connect to MQTT broker").then_some(())
    })
    .await;
    assert_eq!(refused.get_json("/api/health")["mqtt"]["connected"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn server_name_should_let_an_ip_host_verify_a_certificate_issued_to_a_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (broker, pki) = tls_broker(&dir, false, free_port());
    // The certificate names broker.test; we dial 127.0.0.1 and check for
    // broker.test. A name the certificate does not carry must fail.
    let good = format!("ca_file = \"{}\"\nserver_name = \"broker.test\"", pki.ca.display());
    let agent = Agent::start(&tls_config("named", broker.port, "127.0.0.1", &good)).await;
    connected(&agent).await;
    let bad = format!("ca_file = \"{}\"\nserver_name = \"elsewhere.test\"", pki.ca.display());
    let wrong = Agent::start(&tls_config("misnamed", broker.port, "127.0.0.1", &bad)).await;
    wait_for("the certificate error to be logged", Duration::from_secs(10), || {
        let log = wrong.log();
        (log.contains("cannot connect to MQTT broker") && log.to_lowercase().contains("certificate")).then_some(())
    })
    .await;
    assert_eq!(wrong.get_json("/api/health")["mqtt"]["connected"], false);
}

/// A broker that wants a password: user `majortom`, password `rightpass`.
fn password_broker() -> (Broker, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let passwords = dir.path().join("passwords");
    let output = Command::new(find_program(
        "mosquitto_passwd",
        "mosquitto",
        &["/usr/bin/mosquitto_passwd"],
    ))
    .args(["-b", "-c"])
    .arg(&passwords)
    .args(["majortom", "rightpass"])
    .output()
    .expect("run mosquitto_passwd");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let settings = format!("allow_anonymous false\npassword_file {}\n", passwords.display());
    (Broker::start_with(free_port(), &settings), dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_credentials_should_be_not_authorised_with_backoff_and_no_spin() {
    let (broker, _dir) = password_broker();
    let config = test_config("wrongpw", broker.port, "[system]\ninterval_s = 3600\n").replace(
        "keepalive_s = 5",
        "keepalive_s = 5\nusername = \"majortom\"\npassword = \"wrongpass\"",
    );
    let mut agent = Agent::start(&config).await;
    let cpu_before = agent.cpu_time();
    // Kept: how often it retries and what CPU it spends over a span of
    // time are what is under test.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(agent.is_running());
    let log = agent.log();
    assert!(log.contains("not authorised"), "{log}");
    let refusals = broker.log().matches("not authorised").count();
    assert!(
        (2..=8).contains(&refusals),
        "{refusals} refused attempts in 4 s: {}",
        broker.log()
    );
    assert!(
        agent.cpu_time() - cpu_before < Duration::from_millis(800),
        "spinning on refusals"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_right_password_from_a_file_should_connect() {
    let (broker, dir) = password_broker();
    let secret = dir.path().join("mqtt-password");
    std::fs::write(&secret, "rightpass\n").expect("write secret");
    let config = test_config("rightpw", broker.port, "[system]\ninterval_s = 3600\n").replace(
        "keepalive_s = 5",
        &format!(
            "keepalive_s = 5\nusername = \"majortom\"\npassword_file = \"{}\"",
            secret.display()
        ),
    );
    let _agent = Agent::start(&config).await;
    // Read the retained status back with the right credentials.
    let status = wait_retained_with_password(broker.port, "majortom/rightpw/status").await;
    assert_eq!(status, "online");
}

async fn wait_retained_with_password(port: u16, topic: &str) -> String {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let mut options = MqttOptions::new("pw-observer", "127.0.0.1", port);
    options.set_credentials("majortom", "rightpass");
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let event = tokio::time::timeout_at(deadline, eventloop.poll())
            .await
            .expect("a retained status within 10 s")
            .expect("observer connected");
        match event {
            Event::Incoming(Packet::ConnAck(_)) => client.subscribe(topic, QoS::AtLeastOnce).await.expect("subscribe"),
            Event::Incoming(Packet::Publish(p)) if p.topic == topic => {
                return String::from_utf8_lossy(&p.payload).into_owned();
            }
            _ => {}
        }
    }
}

/// `majortom doctor --config PATH`: exit code and stdout.
fn doctor(config: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("majortom.toml");
    std::fs::write(&path, config).expect("write config");
    let output = Command::new(crate::support::binary())
        .arg("doctor")
        .arg("--config")
        .arg(&path)
        .env_remove("MAJORTOM_MQTT_PASSWORD")
        .output()
        .expect("run doctor");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// doctor tells TLS and authentication apart: the right CA connects, a
/// wrong CA fails at TLS, a wrong password at authentication.
#[test]
fn doctor_should_tell_tls_and_authentication_failures_apart() {
    let pki_dir = tempfile::tempdir().expect("tempdir");
    let (broker, pki) = tls_broker(&pki_dir, false, free_port());
    let with_ca = |ca: &Path| {
        tls_config(
            "doc",
            broker.port,
            "localhost",
            &format!("ca_file = \"{}\"", ca.display()),
        )
    };
    let (code, out) = doctor(&with_ca(&pki.ca));
    assert!(
        out.contains("ok    broker: localhost:") && out.contains("TLS, CONNACK in"),
        "{out}"
    );
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = doctor(&with_ca(&pki.other_ca));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("TLS handshake failed") && out.contains("fix: check [mqtt.tls]"),
        "{out}"
    );

    let (broker, _dir) = password_broker();
    let config = test_config("doc", broker.port, "").replace(
        "keepalive_s = 5",
        "keepalive_s = 5\nusername = \"majortom\"\npassword = \"wrongpass\"",
    );
    let (code, out) = doctor(&config);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("refused the connection") && out.contains("mqtt.username"),
        "{out}"
    );
    let (code, out) = doctor(&config.replace("wrongpass", "rightpass"));
    assert_eq!(code, Some(0), "{out}");
}
