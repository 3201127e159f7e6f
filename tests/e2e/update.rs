//! `majortom update`, run for real into a temporary root, with a stand-in
//! for systemd (`support/fake-systemctl.sh`, named by
//! `MAJORTOM_ROOT_SYSTEMCTL`: under `--root` nothing else is started) that runs the
//! installed binary as the unit would and answers `systemctl show` as
//! systemd does for a `Type=notify` unit. A good binary stays; one that
//! exits at once is rolled back by itself; a wrong checksum, another
//! architecture and a plain-HTTP URL are refused before anything changes;
//! a release archive comes over HTTPS (redirect, chunked) from a local TLS
//! server with a test CA, checked against its `SHA256SUMS`.
//!
//! Every run passes `--root`: the tests run as root, and without it the
//! binary would update this machine's /usr/local/bin.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::support::{binary, find_program, free_port, http_get};

/// An installed majortom in a temporary root, "run by systemd" through
/// the stand-in, with a config whose dashboard is on a free port.
struct Installed {
    root: TempDir,
    /// The stand-in, as `systemctl`: named to `update` by
    /// `MAJORTOM_ROOT_SYSTEMCTL`, and first on PATH (where `update --root`
    /// must not pick it up by itself).
    fake_bin: TempDir,
    port: u16,
}

impl Installed {
    /// Installs the built binary (with the real systemd tools, offline),
    /// writes the config and starts the service through the stand-in.
    fn running() -> Installed {
        let installed = Installed::new();
        installed.systemctl(&["restart", "--no-block", "majortom.service"]);
        installed.wait_ready();
        installed
    }

    fn new() -> Installed {
        let root = tempfile::tempdir().expect("tempdir");
        let output = run(Command::new(binary()).args(["install", "--no-start", "--root", &path_str(root.path())]));
        assert!(output.status.success(), "install: {}", text(&output.stderr));
        let port = free_port();
        fs::write(
            root.path().join("etc/majortom/majortom.toml"),
            format!(
                "[node]\nid = \"update_e2e\"\n\n[mqtt]\nenabled = false\n\n[web]\nbind = \"127.0.0.1\"\nport = {port}\n\n\
                 [system]\ninterval_s = 3600\n\n[gpio]\nbackend = \"sim\"\n"
            ),
        )
        .expect("write the config");
        let fake_bin = tempfile::tempdir().expect("tempdir");
        let fake = fake_bin.path().join("systemctl");
        fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/support/fake-systemctl.sh"),
            &fake,
        )
        .expect("copy the stand-in");
        fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).expect("chmod");
        Installed { root, fake_bin, port }
    }

    fn path(&self, absolute: &str) -> PathBuf {
        self.root.path().join(absolute.trim_start_matches('/'))
    }

    fn root_arg(&self) -> String {
        format!("--root={}", path_str(self.root.path()))
    }

    fn path_var(&self) -> std::ffi::OsString {
        let mut dirs = vec![self.fake_bin.path().to_owned()];
        dirs.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
        std::env::join_paths(dirs).expect("PATH")
    }

    fn systemctl(&self, args: &[&str]) -> Output {
        let output = run(Command::new(self.fake_bin.path().join("systemctl"))
            .arg(self.root_arg())
            .args(args));
        assert!(output.status.success(), "systemctl {args:?}: {}", text(&output.stderr));
        output
    }

    /// `majortom update <args> --root <root>`, with the stand-in first on
    /// PATH; run by the built binary (the installed one is what changes).
    fn update(&self, args: &[&str]) -> Output {
        self.update_with(args, &[])
    }

    fn update_with(&self, args: &[&str], envs: &[(&str, &std::ffi::OsStr)]) -> Output {
        let mut command = Command::new(binary());
        command
            .arg("update")
            .args(args)
            .arg(self.root_arg())
            .env("PATH", self.path_var())
            .env("MAJORTOM_ROOT_SYSTEMCTL", self.fake_bin.path().join("systemctl"))
            .env_remove("SSL_CERT_FILE");
        for (name, value) in envs {
            command.env(name, value);
        }
        run(&mut command)
    }

    /// The running service's pid, once the stand-in says it is ready.
    fn wait_ready(&self) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let show = self.systemctl(&["show", "-p", "ActiveState,SubState,ExecMainPID", "majortom.service"]);
            let show = text(&show.stdout);
            if show.contains("ActiveState=active\n") {
                let pid = show
                    .lines()
                    .find_map(|l| l.strip_prefix("ExecMainPID="))
                    .and_then(|p| p.parse().ok())
                    .expect("a pid");
                return pid;
            }
            assert!(
                Instant::now() < deadline,
                "the service did not become ready: {show}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pid(&self) -> Option<u32> {
        fs::read_to_string(self.path("/run/fake-systemd/pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok())
    }

    /// What the stand-in was asked, one call per line.
    fn calls(&self) -> String {
        fs::read_to_string(self.path("/run/fake-systemd/calls")).unwrap_or_default()
    }

    /// What the service's processes printed.
    fn log(&self) -> String {
        fs::read_to_string(self.path("/run/fake-systemd/log")).unwrap_or_default()
    }

    fn binary(&self) -> Vec<u8> {
        fs::read(self.path("/usr/local/bin/majortom")).expect("read the installed binary")
    }

    fn previous(&self) -> Option<Vec<u8>> {
        fs::read(self.path("/usr/local/bin/majortom.prev")).ok()
    }

    fn healthy(&self) -> bool {
        let (status, body) = http_get(([127, 0, 0, 1], self.port).into(), "/api/health");
        status == 200 && body.contains("\"status\":\"ok\"")
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = run(Command::new(self.fake_bin.path().join("systemctl"))
            .arg(self.root_arg())
            .args(["stop", "majortom.service"]));
    }
}

fn path_str(path: &Path) -> String {
    path.to_str().expect("a UTF-8 temporary path").to_owned()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a command, retrying while a binary this test just wrote is still
/// open for writing in a child another test thread forked (ETXTBSY).
fn run(command: &mut Command) -> Output {
    let mut tries = 0;
    loop {
        match command
            .env_remove("MAJORTOM_CONFIG")
            .env_remove("NOTIFY_SOCKET")
            .output()
        {
            Ok(output) => return output,
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("run {command:?}: {e}"),
        }
    }
}

/// A stripped copy of the built binary with bytes appended: it runs the
/// same, but its contents tell it apart. Stripped, because the debug
/// build's 80 MB are over what `update` takes (32 MB; ours are 2 MB).
fn newer_binary(dir: &Path) -> PathBuf {
    let path = dir.join("majortom-newer");
    let strip = run(Command::new(find_program("strip", "binutils", &[]))
        .arg("-o")
        .arg(&path)
        .arg(binary()));
    assert!(strip.status.success(), "strip: {}", text(&strip.stderr));
    let mut bytes = fs::read(&path).expect("read the stripped binary");
    bytes.extend_from_slice(b"\0majortom e2e: a newer build\0");
    fs::write(&path, bytes).expect("write");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn update_to_a_good_binary_should_restart_on_it_and_keep_the_old_one_as_prev() {
    let service = Installed::running();
    let old_pid = service.pid().expect("running");
    let dir = tempfile::tempdir().expect("tempdir");
    let newer = newer_binary(dir.path());

    let started = Instant::now();
    let output = service.update(&[&path_str(&newer), "--timeout", "30"]);
    let elapsed = started.elapsed();
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "update failed:\n{stdout}\n{}\nservice log:\n{}",
        text(&output.stderr),
        service.log()
    );
    println!("update to a good binary: {:.2} s end to end", elapsed.as_secs_f64());
    for step in [
        "no checksum given",
        "built for this machine",
        "kept the replaced",
        "systemctl --root=",
        "restart --no-block majortom.service",
        "READY: pid",
        "healthy: http://127.0.0.1:",
        "done: majortom 0.1.0 runs and is healthy",
    ] {
        assert!(stdout.contains(step), "`{step}` not printed in:\n{stdout}");
    }
    assert_eq!(service.binary(), fs::read(&newer).expect("read newer"));
    assert_eq!(service.previous(), Some(fs::read(binary()).expect("read built")));

    // The service runs a new process, from the installed (new) file.
    let pid = service.pid().expect("running");
    assert_ne!(pid, old_pid);
    let exe = fs::read_link(format!("/proc/{pid}/exe")).expect("the new process's exe");
    assert_eq!(exe, service.path("/usr/local/bin/majortom"));
    assert!(service.healthy());
}

#[test]
fn update_to_a_binary_that_exits_at_once_should_roll_back_by_itself_and_say_why() {
    let service = Installed::running();
    let dir = tempfile::tempdir().expect("tempdir");
    // A real executable for this machine that exits 1 at once.
    let broken = dir.path().join("majortom-broken");
    fs::copy(find_program("false", "coreutils", &["/bin/false"]), &broken).expect("copy false");

    let started = Instant::now();
    let output = service.update(&[&path_str(&broken), "--timeout", "20"]);
    let elapsed = started.elapsed();
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(!output.status.success(), "the update must fail:\n{stdout}");
    println!(
        "update to a binary that exits at once, rolled back: {:.2} s end to end",
        elapsed.as_secs_f64()
    );
    assert!(
        stderr.contains("rolled back: the service failed: failed (failed), result exit-code"),
        "{stderr}"
    );
    assert!(
        stderr.contains("The previous binary (majortom 0.1.0) runs again"),
        "{stderr}"
    );
    assert!(stdout.contains("rolling back"), "{stdout}");

    assert_eq!(
        service.binary(),
        fs::read(binary()).expect("read built"),
        "the old binary is back"
    );
    assert_eq!(service.previous(), Some(fs::read(&broken).expect("read broken")));
    assert!(service.healthy(), "the old binary serves again");
    // Well before the timeout: the failure was seen, not waited out.
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
}

#[test]
fn update_to_a_binary_that_never_reports_ready_should_roll_back_when_the_timeout_ends() {
    let service = Installed::running();
    let dir = tempfile::tempdir().expect("tempdir");
    // A real executable for this machine that starts and hangs: it never
    // writes the ready file, so "systemd" keeps it `activating (start)`.
    let source = dir.path().join("hang.c");
    fs::write(&source, "#include <unistd.h>\nint main(void) { for (;;) pause(); }\n").expect("write hang.c");
    let hanging = dir.path().join("majortom-hangs");
    let cc = run(Command::new(find_program("cc", "gcc", &[]))
        .arg("-o")
        .arg(&hanging)
        .arg(&source));
    assert!(cc.status.success(), "cc: {}", text(&cc.stderr));

    let started = Instant::now();
    let output = service.update(&[&path_str(&hanging), "--timeout", "2"]);
    let elapsed = started.elapsed();
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(!output.status.success(), "the update must fail:\n{stdout}");
    println!(
        "update to a binary that hangs, rolled back after --timeout 2: {:.2} s end to end",
        elapsed.as_secs_f64()
    );
    assert!(
        stderr.contains("rolled back: it did not report READY within 2 s: activating (start)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("The previous binary (majortom 0.1.0) runs again"),
        "{stderr}"
    );
    // The whole --timeout was given before giving up.
    assert!(elapsed >= Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(service.binary(), fs::read(binary()).expect("read built"));
    assert_eq!(service.previous(), Some(fs::read(&hanging).expect("read hanging")));
    assert!(service.healthy(), "the old binary serves again");
}

/// `update` with `args` must fail, saying `words`, and leave the service
/// as it was: same binary, no `.prev`, no restart, the same process.
fn assert_refused(service: &Installed, args: &[&str], words: &[&str]) {
    let before = (service.binary(), service.pid(), service.calls());
    let output = service.update(args);
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "must be refused:\n{}", text(&output.stdout));
    for word in words {
        assert!(stderr.contains(word), "`{word}` not in: {stderr}");
    }
    assert_eq!(service.binary(), before.0, "the binary changed");
    assert_eq!(service.previous(), None, "a .prev was written");
    assert_eq!(service.pid(), before.1, "the service was restarted");
    assert_eq!(service.calls(), before.2, "systemctl was asked to do something");
}

#[test]
fn a_wrong_checksum_should_be_refused_before_anything_changes() {
    let service = Installed::running();
    let dir = tempfile::tempdir().expect("tempdir");
    let newer = newer_binary(dir.path());
    let wrong = sha256_hex(b"something else");
    assert_refused(
        &service,
        &[&path_str(&newer), "--sha256", &wrong],
        &[
            "refusing majortom-newer: its SHA-256 is",
            &format!("but --sha256 says {wrong}"),
            "Nothing was changed",
        ],
    );
    // The same with a SHA256SUMS file that lists another checksum.
    let sums = dir.path().join("SHA256SUMS");
    fs::write(&sums, format!("{wrong}  majortom-newer\n")).expect("write sums");
    assert_refused(
        &service,
        &[&path_str(&newer), "--sums", &path_str(&sums)],
        &["SHA256SUMS says"],
    );
    fs::write(&sums, format!("{wrong}  majortom-other\n")).expect("write sums");
    assert_refused(
        &service,
        &[&path_str(&newer), "--sums", &path_str(&sums)],
        &["has no line for `majortom-newer`"],
    );
    // The right one passes.
    // The right one passes; with --no-start the running process is left
    // alone (systemctl is not asked for anything) and runs the old build.
    let right = sha256_hex(&fs::read(&newer).expect("read"));
    let (pid, calls) = (service.pid(), service.calls());
    let output = service.update(&[&path_str(&newer), "--sha256", &right, "--no-start"]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(stdout.contains("SHA-256 matches --sha256"), "{stdout}");
    assert!(stdout.contains("installed, not restarted (--no-start)"), "{stdout}");
    assert_eq!(service.binary(), fs::read(&newer).expect("read newer"));
    assert_eq!(
        (service.pid(), service.calls()),
        (pid, calls),
        "the service was touched"
    );
    assert!(service.healthy());
}

#[test]
fn a_binary_for_another_architecture_should_be_refused_naming_the_right_build() {
    let service = Installed::new();
    let dir = tempfile::tempdir().expect("tempdir");
    // An aarch64 ELF header (what a Pi 4 build starts with).
    let mut header = vec![0u8; 64];
    header[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
    header[16] = 2;
    header[18..20].copy_from_slice(&183u16.to_le_bytes());
    let aarch64 = dir.path().join("majortom-aarch64");
    fs::write(&aarch64, &header).expect("write");
    assert_refused(
        &service,
        &[&path_str(&aarch64)],
        &[
            "refusing majortom-aarch64: it is built for 64-bit ARM (aarch64), but this system runs x86_64 binaries",
            "take the x86_64-unknown-linux-musl build",
            "Nothing was changed",
        ],
    );
    let script = dir.path().join("majortom.sh");
    fs::write(&script, "#!/bin/sh\nexit 0\n").expect("write");
    assert_refused(
        &service,
        &[&path_str(&script)],
        &["neither a majortom binary nor a release archive"],
    );
}

#[test]
fn a_plain_http_url_should_be_refused_unless_insecure() {
    let service = Installed::new();
    // Nothing listens there: the refusal comes before any connection.
    let url = format!("http://127.0.0.1:{}/majortom", free_port());
    assert_refused(
        &service,
        &[&url],
        &["refusing `http://", "use an https:// URL", "--insecure"],
    );
    // With --insecure it is tried (and fails to connect, changing nothing).
    assert_refused(
        &service,
        &[&url, "--insecure"],
        &["cannot download the new binary: cannot connect to 127.0.0.1"],
    );
}

// ---- HTTPS ------------------------------------------------------------------

/// A test CA and a certificate for 127.0.0.1 signed by it.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new(find_program("openssl", "openssl", &[]))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(output.status.success(), "openssl {args:?}: {}", text(&output.stderr));
}

fn make_pki(dir: &Path) -> Pki {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=majortom update test CA",
    ]);
    openssl(dir, &ca);
    fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n",
    )
    .expect("write server.ext");
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend(["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]);
    openssl(dir, &csr);
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
    Pki {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    }
}

/// An HTTPS server on 127.0.0.1 (rustls, the test CA's certificate) that
/// serves like GitHub's releases: `/download/<name>` redirects to
/// `/cdn/<name>?sig=…`, which answers chunked; `/download/SHA256SUMS` with
/// a Content-Length. Runs until the test process ends.
fn serve_release(pki: &Pki, files: Vec<(String, Vec<u8>)>) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pki.cert)
        .expect("read cert")
        .collect::<Result<_, _>>()
        .expect("parse cert");
    let key = PrivateKeyDer::from_pem_file(&pki.key).expect("read key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config");
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let Ok(connection) = rustls::ServerConnection::new(config.clone()) else {
                continue;
            };
            let mut tls = rustls::StreamOwned::new(connection, stream);
            let mut reader = BufReader::new(&mut tls);
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue; // a client that refused our certificate
            }
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = request_line.split(' ').nth(1).unwrap_or("").to_owned();
            let answer = answer(&path, &files);
            let _ = tls.write_all(&answer);
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    port
}

fn answer(path: &str, files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let find = |name: &str| files.iter().find(|(n, _)| n == name).map(|(_, bytes)| bytes);
    if let Some(name) = path.strip_prefix("/download/") {
        if name == "SHA256SUMS" {
            if let Some(bytes) = find(name) {
                let mut answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", bytes.len()).into_bytes();
                answer.extend_from_slice(bytes);
                return answer;
            }
        } else if find(name).is_some() {
            return format!("HTTP/1.1 302 Found\r\nLocation: /cdn/{name}?sig=e2e\r\nContent-Length: 0\r\n\r\n")
                .into_bytes();
        }
    }
    if let Some(name) = path.strip_prefix("/cdn/").and_then(|p| p.strip_suffix("?sig=e2e")) {
        if let Some(bytes) = find(name) {
            let mut answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for chunk in bytes.chunks(bytes.len() / 3 + 1) {
                answer.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                answer.extend_from_slice(chunk);
                answer.extend_from_slice(b"\r\n");
            }
            answer.extend_from_slice(b"0\r\n\r\n");
            return answer;
        }
    }
    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec()
}

/// A release archive as cross/dist.sh makes it: a folder with the binary
/// and the config, in a .tar.gz.
fn release_archive(dir: &Path, binary: &Path, name: &str) -> Vec<u8> {
    let folder = dir.join(name.trim_end_matches(".tar.gz"));
    fs::create_dir_all(&folder).expect("mkdir");
    fs::copy(binary, folder.join("majortom")).expect("copy binary");
    fs::write(folder.join("majortom.toml"), "# config\n").expect("write config");
    let output = Command::new("tar")
        .current_dir(dir)
        .args(["-czf", name, folder.file_name().and_then(|n| n.to_str()).expect("name")])
        .output()
        .expect("run tar");
    assert!(output.status.success(), "tar: {}", text(&output.stderr));
    fs::read(dir.join(name)).expect("read the archive")
}

#[test]
fn a_release_archive_over_https_should_be_checked_against_sha256sums_and_installed() {
    let service = Installed::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = make_pki(dir.path());
    let newer = newer_binary(dir.path());
    let name = "majortom-9.9.9-x86_64-unknown-linux-musl.tar.gz";
    let archive = release_archive(dir.path(), &newer, name);
    let sums = format!(
        "{}  majortom-9.9.9-aarch64-unknown-linux-musl.tar.gz\n{}  {name}\n",
        sha256_hex(b"another archive"),
        sha256_hex(&archive)
    );
    let port = serve_release(
        &pki,
        vec![(name.to_owned(), archive), ("SHA256SUMS".to_owned(), sums.into_bytes())],
    );
    let url = format!("https://127.0.0.1:{port}/download/{name}");
    let sums_url = format!("https://127.0.0.1:{port}/download/SHA256SUMS");

    // Without the test CA, the server is not trusted.
    let untrusted = service.update_with(
        &[&url, "--sums", &sums_url, "--no-start"],
        &[("SSL_CERT_FILE", dir.path().join("server.pem").as_os_str())],
    );
    assert!(!untrusted.status.success());
    let stderr = text(&untrusted.stderr);
    assert!(
        stderr.contains("the download from 127.0.0.1 failed: invalid peer certificate"),
        "{stderr}"
    );
    assert_eq!(service.binary(), fs::read(binary()).expect("read built"));

    let output = service.update_with(
        &[&url, "--sums", &sums_url, "--no-start"],
        &[("SSL_CERT_FILE", pki.ca.as_os_str())],
    );
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", text(&output.stderr));
    assert!(stdout.contains(&format!("got {name}")), "{stdout}");
    assert!(stdout.contains(&format!("SHA-256 matches {sums_url}")), "{stdout}");
    assert!(stdout.contains("not restarted (--no-start)"), "{stdout}");
    assert_eq!(service.binary(), fs::read(&newer).expect("read newer"));
    assert_eq!(service.previous(), Some(fs::read(binary()).expect("read built")));

    // A name SHA256SUMS does not list is refused.
    let missing = format!("https://127.0.0.1:{port}/download/majortom-9.9.9-other.tar.gz");
    let output = service.update_with(
        &[&missing, "--sums", &sums_url],
        &[("SSL_CERT_FILE", pki.ca.as_os_str())],
    );
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("answered 404 Not Found"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn the_release_archive_check_should_refuse_a_damaged_download() {
    let service = Installed::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut archive = release_archive(dir.path(), &newer_binary(dir.path()), "majortom-9.9.9-x.tar.gz");
    let middle = archive.len() / 2;
    archive[middle] ^= 0xff;
    let damaged = dir.path().join("majortom-9.9.9-x.tar.gz");
    fs::write(&damaged, &archive).expect("write");
    assert_refused(&service, &[&path_str(&damaged)], &["the archive is damaged"]);
}

#[test]
fn update_before_install_should_say_to_install_first_and_write_nothing() {
    let root = tempfile::tempdir().expect("tempdir");
    let output = run(Command::new(binary()).args([
        "update",
        &binary(),
        &format!("--root={}", path_str(root.path())),
        "--no-start",
    ]));
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{}", text(&output.stdout));
    assert!(
        stderr.contains("there is no installed binary")
            && stderr.contains("install one first with `sudo ./majortom install`"),
        "{stderr}"
    );
    assert_eq!(
        fs::read_dir(root.path()).expect("read root").count(),
        0,
        "update wrote into the root"
    );
}

#[test]
fn update_into_a_root_should_start_nothing_unless_a_stand_in_is_named() {
    // An SD card image: systemd cannot restart its unit, so `update --root`
    // installs and stops there, as `install --root` does.
    let service = Installed::running();
    let dir = tempfile::tempdir().expect("tempdir");
    let newer = newer_binary(dir.path());
    let (pid, calls) = (service.pid(), service.calls());
    let output = run(Command::new(binary())
        .args(["update", &path_str(&newer), &service.root_arg()])
        .env("PATH", service.path_var())
        .env_remove("MAJORTOM_ROOT_SYSTEMCTL"));
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", text(&output.stderr));
    assert!(
        stdout.contains("installed, not restarted (nothing is started under --root)"),
        "{stdout}"
    );
    assert_eq!(service.binary(), fs::read(&newer).expect("read newer"));
    assert_eq!(
        (service.pid(), service.calls()),
        (pid, calls),
        "the service was touched"
    );
}
