//! libpq's connection conventions through the CLI against a real server
//! with `ssl = on` and a private CA made in the test with the openssl CLI:
//! `require` encrypts, `verify-full` checks the host name, `verify-ca`
//! needs the right root, client certificates (`hostssl … cert`), Unix
//! sockets without TLS, `PGPASSWORD` and the password file for a role with
//! a SCRAM password, the `PG*` variables alone.
//!
//! Each case runs `lull migrate` with one migration that records what the
//! connection was (`pg_stat_ssl`, the user, socket or TCP) into a table of
//! its own database, so the test reads what lull's own session really was.
//! HOME points at an empty directory and the `PG*` variables are cleared,
//! so nothing of the machine's own configuration leaks in.

use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Output};

use assert_cmd::Command;
use lull_sandbox::{Options, Sandbox};

const PASSWORD: &str = "Pw-for-app-9x";

const HBA: &str = "\
local all all trust
local replication all trust
host all app 127.0.0.1/32 scram-sha-256
hostssl all certuser 127.0.0.1/32 cert
host all all 127.0.0.1/32 trust
";

const MIGRATION: &str = "CREATE TABLE conn_seen AS
  SELECT current_user::text AS usr,
         coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false) AS ssl,
         inet_client_addr() IS NULL AS via_socket;
";

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = StdCommand::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for `db.test`, a client certificate for
/// `certuser`, and an unrelated second CA.
fn make_pki() -> Option<Pki> {
    if StdCommand::new("openssl").arg("version").output().is_err() {
        eprintln!("SKIPPED: the openssl CLI is not installed (scripts/bootstrap installs it)");
        return None;
    }
    let pki = Pki {
        dir: tempfile::tempdir().unwrap(),
    };
    let d = pki.dir.path();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for (ca, cn) in [("ca", "lull test CA"), ("other", "some other CA")] {
        let (key, crt, subj) = (
            format!("{ca}.key"),
            format!("{ca}.crt"),
            format!("/CN={cn}"),
        );
        let mut args = vec!["req", "-x509"];
        args.extend(ec);
        args.extend([
            "-keyout",
            &key,
            "-out",
            &crt,
            "-days",
            "3",
            "-subj",
            &subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(d, &args);
    }
    std::fs::write(
        d.join("server.ext"),
        "subjectAltName=DNS:db.test\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(
        d.join("client.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    for (name, cn) in [("server", "db.test"), ("client", "certuser")] {
        let (key, csr, crt, ext, subj) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
            format!("/CN={cn}"),
        );
        let mut args = vec!["req", "-new"];
        args.extend(ec);
        args.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
        openssl(d, &args);
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "3",
                "-extfile",
                &ext,
            ],
        );
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.join("client.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    Some(pki)
}

fn start_server(pki: &Pki) -> Sandbox {
    let setting = |k: &str, v: &str| (k.to_string(), v.to_string());
    Sandbox::start_with(Options {
        settings: vec![
            setting("ssl", "on"),
            setting("ssl_cert_file", "server.crt"),
            setting("ssl_key_file", "server.key"),
            setting("ssl_ca_file", "ca.crt"),
            setting("password_encryption", "scram-sha-256"),
        ],
        data_files: ["server.crt", "server.key", "ca.crt"]
            .iter()
            .map(|f| (f.to_string(), pki.read(f)))
            .collect(),
        hba: Some(HBA.to_string()),
        ..Options::default()
    })
    .expect("start a sandbox with ssl = on")
}

struct Case<'a> {
    server: &'a Sandbox,
    project: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl<'a> Case<'a> {
    fn new(server: &'a Sandbox) -> Case<'a> {
        let project = tempfile::tempdir().unwrap();
        std::fs::create_dir(project.path().join("migrations")).unwrap();
        std::fs::write(project.path().join("migrations/001_seen.sql"), MIGRATION).unwrap();
        Case {
            server,
            project,
            home: tempfile::tempdir().unwrap(),
        }
    }

    /// `lull ARGS` with a clean environment plus `env`.
    fn lull(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::cargo_bin("lull").unwrap();
        cmd.current_dir(self.project.path())
            .env("HOME", self.home.path())
            .env("NO_COLOR", "1")
            .env_remove("DATABASE_URL")
            .env_remove("LULL_ENV")
            .env_remove("SSL_CERT_FILE")
            .env_remove("SSL_CERT_DIR");
        for (k, _) in std::env::vars() {
            if k.starts_with("PG") {
                cmd.env_remove(k);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.args(args).output().unwrap()
    }

    fn migrate(&self, url: &str, env: &[(&str, &str)]) -> Output {
        self.lull(&["migrate", "--database-url", url], env)
    }

    /// A fresh database owned by `owner`.
    fn database(&self, name: &str, owner: &str) {
        admin(self.server)
            .batch_execute(&format!("CREATE DATABASE \"{name}\" OWNER \"{owner}\""))
            .unwrap();
    }

    /// (user, ssl, via socket) that lull's migration saw in `db`.
    fn seen(&self, db: &str) -> (String, bool, bool) {
        let url = format!(
            "host={} port={} user=postgres dbname={db}",
            self.server.socket_dir().display(),
            self.server.port()
        );
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let row = c
            .query_one("SELECT usr, ssl, via_socket FROM conn_seen", &[])
            .unwrap();
        (row.get(0), row.get(1), row.get(2))
    }
}

fn admin(server: &Sandbox) -> postgres::Client {
    let url = format!(
        "host={} port={} user=postgres dbname=postgres",
        server.socket_dir().display(),
        server.port()
    );
    postgres::Client::connect(&url, postgres::NoTls).unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(out: &Output) -> String {
    let t = text(out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    t
}

fn fails(out: &Output) -> String {
    let t = text(out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    t
}

#[test]
fn tls_modes_certificates_sockets_and_passwords_behave_as_libpq() {
    let Some(pki) = make_pki() else { return };
    let server = start_server(&pki);
    admin(&server)
        .batch_execute(&format!(
            "CREATE ROLE app LOGIN PASSWORD '{PASSWORD}'; CREATE ROLE certuser LOGIN;"
        ))
        .unwrap();
    let case = Case::new(&server);
    let port = server.port().to_string();
    let socket = server.socket_dir().display().to_string();
    let (ca, other, cert, key) = (
        pki.arg("ca.crt"),
        pki.arg("other.crt"),
        pki.arg("client.crt"),
        pki.arg("client.key"),
    );

    // sslmode=require encrypts.
    case.database("d_require", "postgres");
    ok(&case.migrate(
        &format!("postgres://postgres@127.0.0.1:{port}/d_require?sslmode=require"),
        &[],
    ));
    assert_eq!(case.seen("d_require"), ("postgres".into(), true, false));

    // PGSSLMODE=disable is read when the string says nothing: plaintext.
    case.database("d_disable", "postgres");
    ok(&case.migrate(
        &format!("postgres://postgres@127.0.0.1:{port}/d_disable"),
        &[("PGSSLMODE", "disable")],
    ));
    assert!(!case.seen("d_disable").1);

    // verify-full with the private CA and the name on the certificate.
    case.database("d_full", "postgres");
    let full = |host: &str, db: &str| {
        format!(
            "host={host} hostaddr=127.0.0.1 port={port} user=postgres dbname={db} \
             sslmode=verify-full sslrootcert={ca}"
        )
    };
    ok(&case.migrate(&full("db.test", "d_full"), &[]));
    assert_eq!(case.seen("d_full"), ("postgres".into(), true, false));

    // verify-full with a name the certificate does not carry.
    let t = fails(&case.migrate(&full("wrong.test", "d_full"), &[]));
    assert!(t.contains("does not name \"wrong.test\""), "{t}");

    // verify-ca: the name is not checked, the root is.
    case.database("d_ca", "postgres");
    let ca_url = |root: &str| {
        format!(
            "postgres://postgres@wrong.test:{port}/d_ca?hostaddr=127.0.0.1&sslmode=verify-ca{root}"
        )
    };
    let t = fails(&case.migrate(&ca_url(""), &[]));
    assert!(
        t.contains("sslmode=verify-ca needs a root certificate"),
        "{t}"
    );
    let t = fails(&case.migrate(&ca_url(&format!("&sslrootcert={other}")), &[]));
    assert!(t.contains("does not lead to a trusted root"), "{t}");
    ok(&case.migrate(&ca_url(&format!("&sslrootcert={ca}")), &[]));
    assert!(case.seen("d_ca").1);

    // sslrootcert=system: the system's roots (SSL_CERT_FILE here), and
    // verify-full by default.
    case.database("d_system", "postgres");
    let system = format!(
        "host=db.test hostaddr=127.0.0.1 port={port} user=postgres dbname=d_system sslrootcert=system"
    );
    ok(&case.migrate(&system, &[("SSL_CERT_FILE", ca.as_str())]));
    assert!(case.seen("d_system").1);
    let t = fails(&case.migrate(
        &format!("{system} sslmode=require"),
        &[("SSL_CERT_FILE", ca.as_str())],
    ));
    assert!(
        t.contains("sslrootcert=system needs sslmode=verify-full"),
        "{t}"
    );

    // A client certificate for `hostssl … cert`; without it the server
    // refuses.
    case.database("d_cert", "certuser");
    let cert_url = format!(
        "host=db.test hostaddr=127.0.0.1 port={port} user=certuser dbname=d_cert \
         sslmode=verify-full sslrootcert={ca}"
    );
    let t = fails(&case.migrate(&cert_url, &[]));
    assert!(t.contains("certificate"), "{t}");
    ok(&case.migrate(
        &cert_url,
        &[("PGSSLCERT", cert.as_str()), ("PGSSLKEY", key.as_str())],
    ));
    assert_eq!(case.seen("d_cert"), ("certuser".into(), true, false));

    // Unix sockets never use TLS, whatever sslmode says (as libpq).
    case.database("d_socket", "postgres");
    ok(&case.migrate(
        &format!("postgres:///d_socket?host={socket}&port={port}&user=postgres&sslmode=require"),
        &[],
    ));
    assert_eq!(case.seen("d_socket"), ("postgres".into(), false, true));
    case.database("d_socket_kv", "postgres");
    ok(&case.migrate(
        &format!("host={socket} port={port} user=postgres dbname=d_socket_kv"),
        &[],
    ));
    assert!(case.seen("d_socket_kv").2);

    // The PG* variables alone say where; `lull status` reads it.
    case.database("d_env", "postgres");
    let env = [
        ("PGHOST", socket.as_str()),
        ("PGPORT", port.as_str()),
        ("PGUSER", "postgres"),
        ("PGDATABASE", "d_env"),
    ];
    ok(&case.lull(&["migrate"], &env));
    assert!(case.seen("d_env").2);
    let t = ok(&case.lull(&["status"], &env));
    assert!(t.contains("001"), "{t}");

    // A SCRAM password from PGPASSWORD; a wrong one fails without being
    // printed.
    case.database("d_app", "app");
    let app = format!("postgres://app@127.0.0.1:{port}/d_app?sslmode=disable");
    let t = fails(&case.migrate(&app, &[]));
    assert!(t.contains("password"), "{t}");
    let t = fails(&case.migrate(&app, &[("PGPASSWORD", "Wrong-pw-3z")]));
    assert!(t.contains("password authentication failed"), "{t}");
    assert!(!t.contains("Wrong-pw-3z"), "{t}");
    ok(&case.migrate(&app, &[("PGPASSWORD", PASSWORD)]));
    assert_eq!(case.seen("d_app").0, "app");

    // The password file: PGPASSFILE, then ~/.pgpass; ignored (and said so)
    // when others can read it.
    case.database("d_pgpass", "app");
    let pass_url = format!("postgres://app@127.0.0.1:{port}/d_pgpass");
    let pgpass = case.home.path().join(".pgpass");
    std::fs::write(&pgpass, format!("127.0.0.1:{port}:*:app:{PASSWORD}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o644)).unwrap();
    let t = fails(&case.migrate(&pass_url, &[]));
    assert!(t.contains("group or world access"), "{t}");
    assert!(!t.contains(PASSWORD), "{t}");
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let t = ok(&case.lull(&["config", "--database-url", &pass_url], &[]));
    assert!(t.contains("password from the password file"), "{t}");
    assert!(!t.contains(PASSWORD), "{t}");
    ok(&case.migrate(&pass_url, &[]));
    assert_eq!(case.seen("d_pgpass"), ("app".into(), true, false));
    let elsewhere = case.project.path().join("passfile");
    std::fs::rename(&pgpass, &elsewhere).unwrap();
    case.database("d_passfile", "app");
    ok(&case.migrate(
        &format!("postgres://app@127.0.0.1:{port}/d_passfile"),
        &[("PGPASSFILE", elsewhere.to_str().unwrap())],
    ));
    assert_eq!(case.seen("d_passfile").0, "app");
}
