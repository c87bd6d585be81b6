use super::*;

fn argv(args: &[&str]) -> Vec<String> {
    redact_argv_str(args)
        .into_iter()
        .map(Cow::into_owned)
        .collect()
}

fn text(input: &str) -> String {
    redact_str(input).into_owned()
}

fn env(entry: &str) -> String {
    redact_env_str(entry, EnvAllowList::standard()).into_owned()
}

/// Asserts that `args` come out as `want`.
#[track_caller]
fn check(args: &[&str], want: &[&str]) {
    assert_eq!(argv(args), want, "argv {args:?}");
}

/// Asserts that `args` come out unchanged, without allocating.
#[track_caller]
fn kept(args: &[&str]) {
    let out = redact_argv_str(args);
    assert!(
        out.iter().all(|c| matches!(c, Cow::Borrowed(_))),
        "argv {args:?} changed: {out:?}"
    );
}

// ---- argv options ---------------------------------------------------------

#[test]
fn password_option_takes_the_next_element() {
    check(
        &["tool", "--password", "hunter2", "next"],
        &["tool", "--password", "<redacted>", "next"],
    );
}

#[test]
fn password_option_with_equals() {
    check(
        &["tool", "--password=hunter2"],
        &["tool", "--password=<redacted>"],
    );
}

#[test]
fn token_option_both_forms() {
    check(
        &["gh", "--token", "ghp_abc", "--token=ghp_def"],
        &["gh", "--token", "<redacted>", "--token=<redacted>"],
    );
}

#[test]
fn options_ending_in_a_secret_word() {
    check(
        &[
            "tool",
            "--db-password",
            "a",
            "--api-key",
            "b",
            "--auth-token=c",
            "--client-secret",
            "d",
            "--githubtoken",
            "e",
            "--secret-key",
            "f",
            "--apiKey",
            "g",
        ],
        &[
            "tool",
            "--db-password",
            "<redacted>",
            "--api-key",
            "<redacted>",
            "--auth-token=<redacted>",
            "--client-secret",
            "<redacted>",
            "--githubtoken",
            "<redacted>",
            "--secret-key",
            "<redacted>",
            "--apiKey",
            "<redacted>",
        ],
    );
}

#[test]
fn options_that_only_mention_a_secret_word_are_kept() {
    kept(&[
        "docker",
        "login",
        "--password-stdin",
        "registry.example.com",
    ]);
    kept(&["app", "--passwordless-login", "alice"]);
    kept(&["vault", "--token-file", "/run/token"]);
    kept(&["psql2", "--no-password", "mydb"]);
    kept(&["train", "--tokenizer", "bpe", "--max-tokens", "100"]);
}

#[test]
fn password_option_as_the_last_element() {
    kept(&["tool", "--password"]);
    kept(&["tool", "--token="]);
    kept(&["tool", "-u"]);
    kept(&["sshpass", "-p"]);
}

#[test]
fn repeated_options() {
    check(
        &[
            "tool",
            "--token",
            "a",
            "--token",
            "b",
            "--password=c",
            "--password=d",
        ],
        &[
            "tool",
            "--token",
            "<redacted>",
            "--token",
            "<redacted>",
            "--password=<redacted>",
            "--password=<redacted>",
        ],
    );
}

#[test]
fn option_names_in_any_case() {
    check(
        &["tool", "--PASSWORD", "a", "--Token=b", "--Api-Key", "c"],
        &[
            "tool",
            "--PASSWORD",
            "<redacted>",
            "--Token=<redacted>",
            "--Api-Key",
            "<redacted>",
        ],
    );
}

#[test]
fn single_dash_long_options() {
    check(
        &["vault", "-token", "s.abc", "-password=x"],
        &["vault", "-token", "<redacted>", "-password=<redacted>"],
    );
    check(
        &["keytool", "-storepass", "changeit", "-keypass", "k"],
        &[
            "keytool",
            "-storepass",
            "<redacted>",
            "-keypass",
            "<redacted>",
        ],
    );
}

#[test]
fn openssl_pass_arguments() {
    check(
        &[
            "openssl",
            "enc",
            "-pass",
            "pass:hunter2",
            "-passin",
            "env:PW",
            "-passout",
            "file:/p",
        ],
        &[
            "openssl",
            "enc",
            "-pass",
            "pass:<redacted>",
            "-passin",
            "env:PW",
            "-passout",
            "file:/p",
        ],
    );
    check(
        &["openssl", "rsa", "-passin", "raw"],
        &["openssl", "rsa", "-passin", "<redacted>"],
    );
}

// ---- -u user:pass ---------------------------------------------------------

#[test]
fn user_colon_password_keeps_the_user() {
    check(
        &["curl", "-u", "bob:hunter2", "https://example.com/"],
        &["curl", "-u", "bob:<redacted>", "https://example.com/"],
    );
    check(&["curl", "-ubob:hunter2"], &["curl", "-ubob:<redacted>"]);
    check(
        &["curl", "--user", "bob:pw"],
        &["curl", "--user", "bob:<redacted>"],
    );
    check(
        &["curl", "--user=bob:pw"],
        &["curl", "--user=bob:<redacted>"],
    );
    check(
        &["curl", "-U", "proxy:pw"],
        &["curl", "-U", "proxy:<redacted>"],
    );
    check(
        &["http", "-a", "bob:pw", "GET", "x"],
        &["http", "-a", "bob:<redacted>", "GET", "x"],
    );
}

#[test]
fn user_without_password_or_numeric_ids_are_kept() {
    kept(&["curl", "-u", "bob", "https://example.com/"]);
    kept(&["curl", "-u", "bob:", "https://example.com/"]);
    kept(&["tool", "-u", "1000:1000"]);
    kept(&["docker", "run", "-u", "app:app", "img"]);
    kept(&["podman", "run", "--user", "app:app", "img"]);
    kept(&["sudo", "-u", "postgres", "psql"]);
    kept(&["mysql", "-uroot", "db"]);
}

// ---- -p -------------------------------------------------------------------

#[test]
fn mysql_glued_p_is_a_password() {
    check(
        &["mysql", "-uroot", "-pS3cret", "db"],
        &["mysql", "-uroot", "-p<redacted>", "db"],
    );
    check(
        &["/usr/bin/mysqldump", "-pS3cret"],
        &["/usr/bin/mysqldump", "-p<redacted>"],
    );
    check(&["mariadb", "-pS3cret"], &["mariadb", "-p<redacted>"]);
    // `-p db` prompts for the password and opens db; bare --password prompts.
    kept(&["mysql", "-p", "db"]);
    kept(&["mysql", "--password", "db"]);
    kept(&["psql", "--password", "mydb"]);
    check(
        &["mysql", "--password=x", "db"],
        &["mysql", "--password=<redacted>", "db"],
    );
}

#[test]
fn p_is_a_password_for_sshpass_mongo_and_login() {
    check(
        &["sshpass", "-p", "secret", "ssh", "host"],
        &["sshpass", "-p", "<redacted>", "ssh", "host"],
    );
    check(
        &["sshpass", "-psecret", "ssh"],
        &["sshpass", "-p<redacted>", "ssh"],
    );
    check(
        &["mongosh", "-u", "admin", "-p", "pw", "--host", "db"],
        &["mongosh", "-u", "admin", "-p", "<redacted>", "--host", "db"],
    );
    check(
        &[
            "docker",
            "login",
            "-u",
            "bob",
            "-p",
            "secret",
            "registry.example.com",
        ],
        &[
            "docker",
            "login",
            "-u",
            "bob",
            "-p",
            "<redacted>",
            "registry.example.com",
        ],
    );
    check(
        &["redis-cli", "-a", "pw", "ping"],
        &["redis-cli", "-a", "<redacted>", "ping"],
    );
}

#[test]
fn p_elsewhere_is_kept() {
    kept(&["mkdir", "-p", "/a/b"]);
    kept(&["ssh", "-p", "2222", "host"]);
    kept(&["docker", "run", "-p", "8080:80", "img"]);
    kept(&["cp", "-pR", "a", "b"]);
    kept(&["patch", "-p1"]);
    kept(&["psql", "-h", "db", "-p", "5432"]);
}

// ---- headers --------------------------------------------------------------

#[test]
fn authorization_header_keeps_its_scheme() {
    check(
        &["curl", "-H", "Authorization: Bearer abc.def", "https://x/"],
        &[
            "curl",
            "-H",
            "Authorization: Bearer <redacted>",
            "https://x/",
        ],
    );
    assert_eq!(
        text("Authorization: Basic dXNlcjpw"),
        "Authorization: Basic <redacted>"
    );
    assert_eq!(
        text("authorization: token ghp_x"),
        "authorization: token <redacted>"
    );
    assert_eq!(text("Authorization: rawtoken"), "Authorization: <redacted>");
    assert_eq!(
        text("Proxy-Authorization: Basic eA=="),
        "Proxy-Authorization: Basic <redacted>"
    );
}

#[test]
fn cookie_and_api_key_headers() {
    assert_eq!(text("Cookie: a=b; c=d"), "Cookie: <redacted>");
    assert_eq!(
        text("set-cookie: sid=1; HttpOnly"),
        "set-cookie: <redacted>"
    );
    assert_eq!(text("X-API-KEY: k1"), "X-API-KEY: <redacted>");
    assert_eq!(text("x-api-key:k1"), "x-api-key:<redacted>");
    assert_eq!(text("X-Auth-Token: t"), "X-Auth-Token: <redacted>");
    assert_eq!(text("PRIVATE-TOKEN: glpat-x"), "PRIVATE-TOKEN: <redacted>");
}

#[test]
fn header_value_ends_at_line_end_or_quote() {
    assert_eq!(
        text("GET / HTTP/1.1\r\nCookie: a=b\r\nHost: x\r\n"),
        "GET / HTTP/1.1\r\nCookie: <redacted>\r\nHost: x\r\n"
    );
    assert_eq!(
        text("curl -H 'X-Api-Key: k1' https://x/"),
        "curl -H 'X-Api-Key: <redacted>' https://x/"
    );
}

#[test]
fn header_without_a_value_is_kept() {
    kept(&[
        "curl",
        "-H",
        "Authorization:",
        "-H",
        "Cookie: ",
        "https://x/",
    ]);
    assert!(matches!(redact_str("Authorization:"), Cow::Borrowed(_)));
}

#[test]
fn json_and_yaml_secrets() {
    assert_eq!(
        text(r#"{"password":"hunter2","user":"bob"}"#),
        r#"{"password":"<redacted>","user":"bob"}"#
    );
    assert_eq!(
        text(r#"{"api_key": 12345, "n": 1}"#),
        r#"{"api_key": <redacted>, "n": 1}"#
    );
    assert_eq!(
        text("db:\n  password: hunter2\n  host: x"),
        "db:\n  password: <redacted>\n  host: x"
    );
    assert_eq!(text("token: \"abc\""), "token: \"<redacted>\"");
}

// ---- Bearer ---------------------------------------------------------------

#[test]
fn bearer_tokens_anywhere() {
    assert_eq!(
        text("use Bearer abc123 please"),
        "use Bearer <redacted> please"
    );
    assert_eq!(text("bearer\tabc"), "bearer\t<redacted>");
    assert_eq!(text("BEARER abc,next"), "BEARER <redacted>,next");
    assert_eq!(text("'Bearer abc'"), "'Bearer <redacted>'");
    assert!(matches!(redact_str("Bearer"), Cow::Borrowed(_)));
    assert!(matches!(redact_str("Bearer "), Cow::Borrowed(_)));
    assert!(matches!(redact_str("forbearer x"), Cow::Borrowed(_)));
}

// ---- key=value ------------------------------------------------------------

#[test]
fn secret_keys_in_key_value_pairs() {
    assert_eq!(text("token=abc"), "token=<redacted>");
    assert_eq!(text("DB_PASSWORD=x ./run"), "DB_PASSWORD=<redacted> ./run");
    assert_eq!(text("apiKey=k"), "apiKey=<redacted>");
    assert_eq!(text("Api_Key=k"), "Api_Key=<redacted>");
    assert_eq!(
        text("client_secret=s;path=/"),
        "client_secret=<redacted>;path=/"
    );
    assert_eq!(text("githubtoken=x"), "githubtoken=<redacted>");
    // A secret-looking word anywhere in the key counts.
    assert_eq!(text("token_count=3"), "token_count=<redacted>");
}

#[test]
fn secret_keys_in_query_strings() {
    assert_eq!(
        text("https://api.example.com/v1?user=bob&api_key=k1&page=2#top"),
        "https://api.example.com/v1?user=bob&api_key=<redacted>&page=2#top"
    );
    assert_eq!(
        text("https://h/cb#access_token=abc&expires=3600"),
        "https://h/cb#access_token=<redacted>&expires=3600"
    );
    assert_eq!(
        text("https://x.blob.core.windows.net/c?sv=2022&sig=abc%3D"),
        "https://x.blob.core.windows.net/c?sv=2022&sig=<redacted>"
    );
    check(
        &["curl", "-d", "user=bob&password=pw"],
        &["curl", "-d", "user=bob&password=<redacted>"],
    );
}

#[test]
fn keys_that_only_contain_a_secret_word_are_kept() {
    for kept_text in [
        "tokenizer=3",
        "max_tokens=100",
        "passwordless=true",
        "AWS_ACCESS_KEY_ID=AKIAEXAMPLE",
        "bypass=1",
        "a==b",
        "=token",
    ] {
        assert!(
            matches!(redact_str(kept_text), Cow::Borrowed(_)),
            "{kept_text}"
        );
    }
}

#[test]
fn is_secret_key_cases() {
    for key in [
        "GITHUB_TOKEN",
        "token",
        "apiKey",
        "X-Api-Key",
        "db_password",
        "DBPASSWORD",
        "AWS_SECRET_ACCESS_KEY",
        "OPENAI_API_KEY",
        "TS_AUTHKEY",
        "ssh.private-key",
        "X-Amz-Signature",
        "GIT_CREDENTIALS",
        "--token",
    ] {
        assert!(is_secret_key(key.as_bytes()), "{key} should be secret");
    }
    for key in [
        "tokenizer",
        "max_tokens",
        "PATH",
        "passwordless",
        "AWS_ACCESS_KEY_ID",
        "monkey",
        "",
    ] {
        assert!(!is_secret_key(key.as_bytes()), "{key} should not be secret");
    }
}

// ---- URLs -----------------------------------------------------------------

#[test]
fn url_userinfo() {
    assert_eq!(
        text("https://user:pass@host/"),
        "https://user:<redacted>@host/"
    );
    assert_eq!(text("https://token@host"), "https://<redacted>@host");
    assert_eq!(
        text("git clone https://bob:pw@example.com:8443/a/b.git?x=1"),
        "git clone https://bob:<redacted>@example.com:8443/a/b.git?x=1"
    );
    // The last @ of the authority ends the userinfo.
    assert_eq!(
        text("postgres://app:s3cr@t@db:5432/x"),
        "postgres://app:<redacted>@db:5432/x"
    );
    assert_eq!(
        text("https://x-access-token:ghs_x@github.com/o/r"),
        "https://x-access-token:<redacted>@github.com/o/r"
    );
    assert_eq!(
        text("https://ghp_x:x-oauth-basic@github.com/o/r"),
        "https://<redacted>:x-oauth-basic@github.com/o/r"
    );
}

#[test]
fn urls_without_secrets_are_kept() {
    for url in [
        "https://example.com:8443/a/b?x=1",
        "ssh://git@github.com/org/repo",
        "git+ssh://git@host:22/r",
        "mailto:bob@example.com",
        "https://host/@user/page",
        "https://user:@host/",
    ] {
        assert!(matches!(redact_str(url), Cow::Borrowed(_)), "{url}");
    }
}

// ---- env ------------------------------------------------------------------

#[test]
fn env_keys_kept_values_redacted_unless_allowed() {
    assert_eq!(env("PATH=/usr/bin:/bin"), "PATH=/usr/bin:/bin");
    assert_eq!(env("HOME=/root"), "HOME=/root");
    assert_eq!(env("LC_ALL=C.UTF-8"), "LC_ALL=C.UTF-8");
    assert_eq!(env("GITHUB_TOKEN=ghp_x"), "GITHUB_TOKEN=<redacted>");
    assert_eq!(env("FOO=bar"), "FOO=<redacted>");
    assert_eq!(env("EMPTY="), "EMPTY=");
    assert_eq!(env("NOEQUALS"), "NOEQUALS");
    assert_eq!(env("A=b=c"), "A=<redacted>");
}

/// The default list keeps ordinary settings (locale, terminal, paths,
/// tool behaviour, CI run facts) and still nothing secret-looking.
#[test]
fn ordinary_env_names_are_kept() {
    for entry in [
        "DEBIAN_FRONTEND=noninteractive",
        "LC_ALL=C.UTF-8",
        "LANGUAGE=en",
        "COLORTERM=truecolor",
        "COLUMNS=120",
        "NO_COLOR=1",
        "LD_PRELOAD=/.substrate/libsubstrate_preload.so",
        "PYTHONPATH=/src",
        "XDG_CACHE_HOME=/root/.cache",
        "CI=true",
        "GITHUB_ACTIONS=true",
        "GITHUB_SHA=0123abcd",
        "CI_COMMIT_REF_NAME=main",
        "RUST_BACKTRACE=1",
    ] {
        assert_eq!(env(entry), entry);
    }
    // CI systems' secrets beside them are not.
    for (entry, want) in [
        ("CI_JOB_TOKEN=x", "CI_JOB_TOKEN=<redacted>"),
        ("CI_JOB_JWT=eyJ", "CI_JOB_JWT=<redacted>"),
        ("GITHUB_TOKEN=ghp_x", "GITHUB_TOKEN=<redacted>"),
        (
            "ACTIONS_RUNTIME_TOKEN=x",
            "ACTIONS_RUNTIME_TOKEN=<redacted>",
        ),
        (
            "BUILDKITE_AGENT_ACCESS_TOKEN=x",
            "BUILDKITE_AGENT_ACCESS_TOKEN=<redacted>",
        ),
    ] {
        assert_eq!(env(entry), want);
    }
    // An allowed value still loses the password in a URL.
    assert_eq!(
        env("PYTHONPATH=https://u:pw@x.invalid/lib"),
        "PYTHONPATH=https://u:<redacted>@x.invalid/lib"
    );
    for pattern in EnvAllowList::DEFAULT_PATTERNS {
        let name = pattern.trim_end_matches('*');
        assert!(!is_secret_key(name.as_bytes()), "{pattern} looks secret");
    }
}

#[test]
fn commands_and_environments_for_records_and_screens() {
    let command: Vec<String> = ["curl", "https://user:pw@x.invalid/?token=abc", "-o", "out"]
        .map(String::from)
        .to_vec();
    assert_eq!(
        redact_command(&command),
        [
            "curl",
            "https://user:<redacted>@x.invalid/?token=<redacted>",
            "-o",
            "out"
        ]
    );
    let env: Vec<String> = ["DEBIAN_FRONTEND=noninteractive", "MY_VAR=x", "EMPTY"]
        .map(String::from)
        .to_vec();
    assert_eq!(
        redact_environment(&env),
        [
            "DEBIAN_FRONTEND=noninteractive",
            "MY_VAR=<redacted>",
            "EMPTY"
        ]
    );
    // Twice is once.
    assert_eq!(
        redact_command(&redact_command(&command)),
        redact_command(&command)
    );
    assert_eq!(
        redact_environment(&redact_environment(&env)),
        redact_environment(&env)
    );
}

#[test]
fn allowed_env_values_still_go_through_the_patterns() {
    let allow = EnvAllowList::default().with("HTTPS_PROXY").with("CURL_*");
    assert_eq!(
        redact_env_str("HTTPS_PROXY=http://u:pw@proxy:3128", &allow),
        "HTTPS_PROXY=http://u:<redacted>@proxy:3128"
    );
    assert_eq!(redact_env_str("CURL_HOME=/x", &allow), "CURL_HOME=/x");
    assert_eq!(
        redact_env_str("TERM=xterm Bearer abc", &allow),
        "TERM=xterm Bearer <redacted>"
    );
}

#[test]
fn allow_lists_never_expose_secret_keys() {
    let allow = EnvAllowList::new(["GITHUB_TOKEN", "MY_*"]);
    assert_eq!(
        redact_env_str("GITHUB_TOKEN=x", &allow),
        "GITHUB_TOKEN=<redacted>"
    );
    assert_eq!(
        redact_env_str("MY_SECRET=x", &allow),
        "MY_SECRET=<redacted>"
    );
    assert_eq!(redact_env_str("MY_DIR=/x", &allow), "MY_DIR=/x");
    // Not in this list: PATH.
    assert_eq!(redact_env_str("PATH=/bin", &allow), "PATH=<redacted>");
    assert_eq!(
        redact_env_str("PATH=/bin", &EnvAllowList::none()),
        "PATH=<redacted>"
    );
}

// ---- bytes ----------------------------------------------------------------

#[test]
fn non_utf8_bytes_around_secrets() {
    assert_eq!(
        redact_bytes(b"\xfftoken=abc\xfe def").as_ref(),
        b"\xfftoken=<redacted> def"
    );
    assert_eq!(
        redact_bytes(b"\xe9Authorization: Bearer \xff\xfe\n\xff").as_ref(),
        b"\xe9Authorization: Bearer <redacted>\n\xff"
    );
    let args: [&[u8]; 5] = [
        b"tool\xff",
        b"--token",
        b"\xff\xfe\xfd",
        b"--password=\xc3",
        b"\xff",
    ];
    let out = redact_argv(&args);
    assert_eq!(out[2].as_ref(), b"<redacted>");
    assert_eq!(out[3].as_ref(), b"--password=<redacted>");
    assert!(matches!(out[0], Cow::Borrowed(_)) && matches!(out[4], Cow::Borrowed(_)));
    assert_eq!(
        redact_env_entry(b"K\xff=v\xfe", EnvAllowList::standard()).as_ref(),
        b"K\xff=<redacted>"
    );
}

#[test]
fn nothing_to_redact_allocates_nothing() {
    assert!(matches!(redact_bytes(b"ls -la /tmp"), Cow::Borrowed(_)));
    assert!(matches!(
        redact_env_entry(b"PATH=/bin", EnvAllowList::standard()),
        Cow::Borrowed(_)
    ));
    kept(&[
        "git",
        "commit",
        "-m",
        "fix: the tokenizer, again",
        "--",
        "src/a.rs",
    ]);
}

// ---- shell command lines --------------------------------------------------

#[test]
fn shell_command_lines_get_the_argv_rules() {
    check(
        &[
            "sh",
            "-c",
            "mysql -uroot -pS3cret db; curl -u bob:pw https://x/",
        ],
        &[
            "sh",
            "-c",
            "mysql -uroot -p<redacted> db; curl -u bob:<redacted> https://x/",
        ],
    );
    check(
        &[
            "bash",
            "-c",
            "export DB_PASSWORD=x && ./run --token abc 'v'",
        ],
        &[
            "bash",
            "-c",
            "export DB_PASSWORD=<redacted> && ./run --token <redacted> 'v'",
        ],
    );
    check(
        &["sh", "-c", "FOO=1 sudo sshpass -p 'pw' ssh h"],
        &["sh", "-c", "FOO=1 sudo sshpass -p '<redacted>' ssh h"],
    );
    kept(&["sh", "-c", "mkdir -p /a && cp -p x y | ssh -p 22 h"]);
}

// ---- idempotence ----------------------------------------------------------

#[test]
fn redacting_twice_changes_nothing_more() {
    let samples = [
        "https://user:pass@host/?token=x&y=1",
        "https://token@host",
        "Authorization: Bearer abc",
        "Cookie: a=b",
        "{\"password\": \"x\"}",
        "curl -d 'user=bob&password=pw' -H 'X-Api-Key: k'",
        "https://ghp_x:x-oauth-basic@github.com",
    ];
    for sample in samples {
        let once = text(sample);
        assert_ne!(once, sample);
        assert!(
            matches!(redact_str(&once), Cow::Borrowed(_)),
            "{sample} -> {once}"
        );
    }
    let args = ["mysql", "-pX", "--token", "t", "-u", "a:b", "--password=p"];
    let once = argv(&args);
    let once_refs: Vec<&str> = once.iter().map(String::as_str).collect();
    kept(&once_refs);
    assert!(matches!(
        redact_env_str("GITHUB_TOKEN=<redacted>", EnvAllowList::standard()),
        Cow::Borrowed(_)
    ));
}

#[test]
fn command_lines_as_one_string() {
    assert_eq!(
        String::from_utf8(
            redact_command_line(b"curl -u bob:pw -H 'Cookie: a' https://x/").into_owned()
        )
        .unwrap(),
        "curl -u bob:<redacted> -H 'Cookie: <redacted>' https://x/"
    );
    for subject in [&b"/etc/shadow"[..], b"evil.example:443", b"mkdir -p /a"] {
        assert!(matches!(redact_command_line(subject), Cow::Borrowed(_)));
    }
}

#[test]
fn wrapped_programs_get_their_own_rules() {
    check(
        &["sudo", "-u", "app", "mysql", "-pS3cret"],
        &["sudo", "-u", "app", "mysql", "-p<redacted>"],
    );
    check(
        &[
            "env", "-i", "HOME=/x", "timeout", "10", "sshpass", "-p", "pw", "ssh", "h",
        ],
        &[
            "env",
            "-i",
            "HOME=/x",
            "timeout",
            "10",
            "sshpass",
            "-p",
            "<redacted>",
            "ssh",
            "h",
        ],
    );
    kept(&["sudo", "mkdir", "-p", "/a"]);
}

/// Random concatenations of the pieces the rules look for: no panic, and
/// UTF-8 in gives UTF-8 out (every cut is next to an ASCII byte). A second
/// pass over such garbage may cut more than the first (a cut can remove the
/// `@`, quote or `;` that bounded another rule's value): idempotence is
/// checked on realistic input in `redacting_twice_changes_nothing_more`.
#[test]
fn pathological_inputs_do_not_panic_or_break_utf8() {
    const PIECES: &[&[u8]] = &[
        b"token=",
        b"Bearer ",
        b"bearer",
        b"://",
        b"https",
        b"@",
        b":",
        b" ",
        b"\t",
        b"\n",
        b"\"",
        b"'",
        b"-p",
        b"-u",
        b"--password",
        b"--token=",
        b"=",
        b"&",
        b";",
        b"a",
        b"B1",
        b"\xff",
        b"\xc3",
        b"Authorization:",
        b"Cookie: ",
        b"x-oauth-basic",
        b"<redacted>",
        b"pass:",
        b"sudo",
        b"mysql",
        b"login",
        b"(",
        b"|",
        b"apiKey",
        "\u{e9}".as_bytes(),
        "\u{2192}".as_bytes(),
        "\u{1f512}".as_bytes(),
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let utf8_kept = |input: &[u8], output: &[u8]| {
        if std::str::from_utf8(input).is_ok() {
            assert!(
                std::str::from_utf8(output).is_ok(),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    };
    for _ in 0..50_000 {
        let len = (next() % 12) as usize;
        let mut input = Vec::new();
        let mut args: Vec<Vec<u8>> = vec![b"tool".to_vec()];
        for _ in 0..len {
            let piece = PIECES[(next() % PIECES.len() as u64) as usize];
            input.extend_from_slice(piece);
            if next() % 3 == 0 {
                args.push(piece.to_vec());
            } else if let Some(last) = args.last_mut() {
                last.extend_from_slice(piece);
            }
        }
        utf8_kept(&input, &redact_bytes(&input));
        utf8_kept(&input, &redact_command_line(&input));
        utf8_kept(&input, &redact_env_entry(&input, EnvAllowList::standard()));
        for (arg, out) in args.iter().zip(redact_argv(&args)) {
            utf8_kept(arg, &out);
        }
    }
}
