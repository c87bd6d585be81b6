//! Redaction: what is cut out of argv, env and free text before a span is
//! written. Everything works on bytes (argv, env and paths need not be
//! UTF-8) and returns `Cow::Borrowed` when nothing changed; every rule
//! replaces a secret with [`REDACTED`]. A value that already starts with the
//! marker is left alone, so redacting twice changes nothing more (on garbage
//! a second pass may cut more, never less).
//!
//! Free text ([`redact_bytes`], applied to every argv element and to
//! allow-listed env values):
//! - `key=value` where `key` looks secret ([`is_secret_key`]): `value`, up to
//!   whitespace, `&`, `;` or a quote, becomes `<redacted>` (query strings,
//!   `--token=x`, `DB_PASSWORD=x` inside a shell command);
//! - `Name: value` where `Name` is `Authorization`, `Proxy-Authorization`,
//!   `Cookie`, `Set-Cookie` or `X-Api-Key` (any case) or looks secret:
//!   the value up to the end of the line or a quote; an `Authorization`
//!   value keeps its scheme (`Authorization: Bearer <redacted>`). The same
//!   rule covers YAML (`password: x`) and JSON (`"password": "x"`);
//! - `Bearer <token>` (any case; the token's RFC 6750 characters) → `Bearer <redacted>`;
//! - URL userinfo: `scheme://user:pass@host` → `scheme://user:<redacted>@host`,
//!   `scheme://token@host` → `scheme://<redacted>@host`, except for ssh-like
//!   schemes (`ssh`, `sftp`, `git+ssh`, `ssh+git`) where a lone user is a
//!   login name.
//!
//! Argv ([`redact_argv`]), in addition, by position:
//! - the value of a long option whose name ends in a secret word (`--password
//!   X`, `--password=X`, `--db-password X`, `--api-key X`, `--auth-token X`,
//!   also single-dash `-token X` and Java/openssl `-storepass X`, `-passin
//!   pass:X`): the value, or the next element. Not for `--no-…` options, nor
//!   names where the word is not last (`--password-stdin`, `--passwordless-login`,
//!   `--token-file`). For `mysql*`/`mariadb*` and `psql`-family programs a bare
//!   `--password` only makes them prompt, so it takes no next element;
//! - `-u user:pass`, `-uuser:pass`, `-U …`, `--user …`, `--proxy-user …`,
//!   `--auth …` → `user:<redacted>`; not when both sides are numbers
//!   (`uid:gid`), and `-u` is left alone for container CLIs (`docker run -u
//!   app:app` is a user and group);
//! - `-p`: a password only where it is one: `-pSECRET` for `mysql*` and
//!   `mariadb*` (whose `-p VALUE` prompts and takes VALUE as the database),
//!   `-p X` and `-pX` for `sshpass`, `mongo*`, and after a `login` subcommand
//!   (`docker login -p X`); `-a X` for `redis-cli`. Everywhere else `-p` is
//!   a port, a parent dir or a patch level and is kept;
//! - the program is `argv[0]`'s base name, or for wrappers (`sudo`, `env`,
//!   `timeout`, `xargs`, ...) the program they run (`sudo -u app mysql -pX`);
//! - an element with whitespace in it (`sh -c "…"`) is also split into words
//!   and each command in it goes through the rules above (quotes are only
//!   trimmed, not parsed: a quoted secret with spaces is cut at its first one).
//!
//! Env ([`redact_env_entry`]): every key is kept; a value is replaced unless
//! its key is allow-listed ([`EnvAllowList`]; the default list names
//! ordinary settings: locale, terminal, paths, tool behaviour such as
//! `DEBIAN_FRONTEND`, CI run facts), and an allowed value still goes through
//! the free-text rules.
//!
//! These are the only rules: traces, world records ([`redact_command`],
//! [`redact_environment`]) and what `substrate-cli` shows all use them.

use std::borrow::Cow;
use std::sync::OnceLock;

/// What every redacted value is replaced with.
pub const REDACTED: &str = "<redacted>";
const MARK: &[u8] = REDACTED.as_bytes();

/// Words that make a `key=value` key (or a header name) secret, whole words
/// of the key (split at non-alphanumerics and camelCase humps).
const KEY_WORDS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "passphrase",
    "pass",
    "apikey",
    "authkey",
    "credential",
    "credentials",
    "signature",
    "sig",
];
/// Words that make a `…-key` key secret when they come just before `key`.
const KEY_QUALIFIERS: &[&str] = &["api", "secret", "auth", "private"];
/// Endings that make a key secret even when glued to other letters
/// (`githubtoken`, `DBPASSWORD`, `xapikey`).
const GLUED_ENDINGS: &[&str] = &["token", "secret", "password", "passwd", "apikey", "authkey"];
/// The last word of an option whose value is a secret.
const OPTION_LAST_WORDS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "pass",
    "token",
    "secret",
    "apikey",
    "authkey",
];
/// Header names whose value is a credential.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
];
/// URL schemes where `user@host` names a login, not a token.
const SSH_SCHEMES: &[&str] = &["ssh", "sftp", "git+ssh", "ssh+git"];

/// Environment variables whose values are kept (after the free-text rules).
/// `NAME` matches exactly, `PREFIX*` matches every name starting with PREFIX;
/// names are case-sensitive, as the environment is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvAllowList {
    exact: Vec<Vec<u8>>,
    prefixes: Vec<Vec<u8>>,
}

impl EnvAllowList {
    /// The patterns of the default list: names whose values are ordinary
    /// settings, never credentials (and a secret-looking name is refused
    /// whatever the list says, see [`EnvAllowList::allows`]). Grouped by
    /// what they are; CI variables are named one by one, never by prefix,
    /// because CI systems put their tokens beside them (`CI_JOB_JWT`,
    /// `BUILDKITE_AGENT_ACCESS_TOKEN`).
    pub const DEFAULT_PATTERNS: &'static [&'static str] = &[
        // who and where
        "HOME",
        "PWD",
        "OLDPWD",
        "USER",
        "LOGNAME",
        "SHELL",
        "HOSTNAME",
        "SHLVL",
        "TZ",
        // locale
        "LANG",
        "LANGUAGE",
        "LC_*",
        // terminal
        "TERM",
        "COLORTERM",
        "TERMINFO",
        "COLUMNS",
        "LINES",
        "NO_COLOR",
        "FORCE_COLOR",
        "CLICOLOR",
        "CLICOLOR_FORCE",
        // paths (a value is still searched for URLs with passwords)
        "PATH",
        "MANPATH",
        "INFOPATH",
        "TMPDIR",
        "TMP",
        "TEMP",
        "XDG_CONFIG_HOME",
        "XDG_CACHE_HOME",
        "XDG_DATA_HOME",
        "XDG_STATE_HOME",
        "XDG_RUNTIME_DIR",
        "XDG_CONFIG_DIRS",
        "XDG_DATA_DIRS",
        "LD_LIBRARY_PATH",
        "LD_PRELOAD",
        "LIBRARY_PATH",
        "CPATH",
        "C_INCLUDE_PATH",
        "CPLUS_INCLUDE_PATH",
        "PKG_CONFIG_PATH",
        "PYTHONPATH",
        "PYTHONHOME",
        "VIRTUAL_ENV",
        "CONDA_PREFIX",
        "NODE_PATH",
        "GOPATH",
        "GOROOT",
        "GOBIN",
        "GOCACHE",
        "CARGO_HOME",
        "CARGO_TARGET_DIR",
        "RUSTUP_HOME",
        "JAVA_HOME",
        // how tools behave
        "DEBIAN_FRONTEND",
        "DEBCONF_NONINTERACTIVE_SEEN",
        "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE",
        "NODE_ENV",
        "RUST_BACKTRACE",
        "RUST_LOG",
        "CARGO_TERM_COLOR",
        "CARGO_INCREMENTAL",
        "GOOS",
        "GOARCH",
        "CGO_ENABLED",
        // CI: which system, run, job, commit and branch
        "CI",
        "CONTINUOUS_INTEGRATION",
        "BUILD_NUMBER",
        "BUILD_ID",
        "JOB_NAME",
        "WORKSPACE",
        "GITHUB_ACTIONS",
        "GITHUB_WORKFLOW",
        "GITHUB_RUN_ID",
        "GITHUB_RUN_NUMBER",
        "GITHUB_RUN_ATTEMPT",
        "GITHUB_JOB",
        "GITHUB_ACTION",
        "GITHUB_ACTOR",
        "GITHUB_REPOSITORY",
        "GITHUB_REPOSITORY_OWNER",
        "GITHUB_EVENT_NAME",
        "GITHUB_REF",
        "GITHUB_REF_NAME",
        "GITHUB_REF_TYPE",
        "GITHUB_HEAD_REF",
        "GITHUB_BASE_REF",
        "GITHUB_SHA",
        "GITHUB_WORKSPACE",
        "GITHUB_SERVER_URL",
        "RUNNER_OS",
        "RUNNER_ARCH",
        "RUNNER_NAME",
        "RUNNER_TEMP",
        "GITLAB_CI",
        "CI_PIPELINE_ID",
        "CI_PIPELINE_SOURCE",
        "CI_JOB_ID",
        "CI_JOB_NAME",
        "CI_JOB_STAGE",
        "CI_COMMIT_SHA",
        "CI_COMMIT_REF_NAME",
        "CI_COMMIT_BRANCH",
        "CI_COMMIT_TAG",
        "CI_DEFAULT_BRANCH",
        "CI_PROJECT_PATH",
        "CI_PROJECT_NAME",
        "CI_PROJECT_DIR",
        "BUILDKITE",
        "BUILDKITE_BRANCH",
        "BUILDKITE_COMMIT",
        "BUILDKITE_BUILD_NUMBER",
        "BUILDKITE_PIPELINE_SLUG",
        "CIRCLECI",
        "CIRCLE_BRANCH",
        "CIRCLE_SHA1",
        "CIRCLE_BUILD_NUM",
        "CIRCLE_JOB",
        "TRAVIS",
        "TRAVIS_BRANCH",
        "TRAVIS_COMMIT",
        "TRAVIS_BUILD_NUMBER",
        "TRAVIS_JOB_ID",
    ];

    /// A list of `NAME` and `PREFIX*` patterns.
    pub fn new<I, P>(patterns: I) -> EnvAllowList
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        patterns
            .into_iter()
            .fold(EnvAllowList::none(), |list, p| list.with(p))
    }

    /// An empty list: every value is redacted.
    pub fn none() -> EnvAllowList {
        EnvAllowList {
            exact: Vec::new(),
            prefixes: Vec::new(),
        }
    }

    /// The default list, built once.
    pub fn standard() -> &'static EnvAllowList {
        static STANDARD: OnceLock<EnvAllowList> = OnceLock::new();
        STANDARD.get_or_init(|| EnvAllowList::new(EnvAllowList::DEFAULT_PATTERNS))
    }

    /// This list and one more pattern.
    pub fn with(mut self, pattern: impl AsRef<[u8]>) -> EnvAllowList {
        let pattern = pattern.as_ref();
        match pattern.strip_suffix(b"*") {
            Some(prefix) => self.prefixes.push(prefix.to_vec()),
            None => self.exact.push(pattern.to_vec()),
        }
        self
    }

    /// Whether `key`'s value may be kept. A key that looks secret
    /// ([`is_secret_key`]) never is, whatever the patterns say.
    pub fn allows(&self, key: &[u8]) -> bool {
        let listed =
            self.exact.iter().any(|n| n == key) || self.prefixes.iter().any(|p| key.starts_with(p));
        listed && !is_secret_key(key)
    }
}

impl Default for EnvAllowList {
    fn default() -> EnvAllowList {
        EnvAllowList::standard().clone()
    }
}

/// Whether a `key=value` key or a header name names a secret: one of its
/// words is a secret word (token, secret, password, passwd, passphrase,
/// pass, apikey, authkey, credential(s), signature, sig), or it ends in
/// `api|secret|auth|private` + `key`, or it ends in token, secret, password,
/// passwd, apikey or authkey glued to other letters. Case-insensitive.
///
/// So `GITHUB_TOKEN`, `apiKey`, `X-Api-Key`, `db_password`, `githubtoken`,
/// `token_count` are secret; `tokenizer`, `max_tokens`, `passwordless`,
/// `AWS_ACCESS_KEY_ID` are not.
pub fn is_secret_key(key: &[u8]) -> bool {
    let mut prev: Option<&[u8]> = None;
    for word in Words::new(key) {
        if is_one_of(word, KEY_WORDS)
            || (word.eq_ignore_ascii_case(b"key")
                && prev.is_some_and(|p| is_one_of(p, KEY_QUALIFIERS)))
        {
            return true;
        }
        prev = Some(word);
    }
    GLUED_ENDINGS.iter().any(|e| glued_ends_with(key, e))
}

/// Applies the free-text rules (see the module doc).
pub fn redact_bytes(input: &[u8]) -> Cow<'_, [u8]> {
    let mut ranges = Vec::new();
    scan_text(input, &mut ranges);
    apply(input, ranges)
}

/// [`redact_bytes`] on a string.
pub fn redact_str(input: &str) -> Cow<'_, str> {
    str_cow(input, redact_bytes(input.as_bytes()))
}

/// A command line as one string (a policy subject, a `sh -c` script): the
/// free-text rules, and the argv rules on its words as for an argv element
/// with whitespace in it.
pub fn redact_command_line(input: &[u8]) -> Cow<'_, [u8]> {
    let mut ranges = Vec::new();
    scan_text(input, &mut ranges);
    scan_shell(input, &mut ranges);
    apply(input, ranges)
}

/// Applies the argv rules and the free-text rules to every element
/// (`argv[0]` names the program for the program-specific rules).
pub fn redact_argv<T: AsRef<[u8]>>(argv: &[T]) -> Vec<Cow<'_, [u8]>> {
    let mut state = Command::new(argv.first().map(AsRef::as_ref).unwrap_or_default());
    argv.iter()
        .enumerate()
        .map(|(i, arg)| {
            let arg = arg.as_ref();
            let mut ranges = Vec::new();
            if i > 0 {
                state.word(arg, 0, &mut ranges);
            }
            scan_text(arg, &mut ranges);
            if arg.iter().any(u8::is_ascii_whitespace) {
                scan_shell(arg, &mut ranges);
            }
            apply(arg, ranges)
        })
        .collect()
}

/// [`redact_argv`] on strings.
pub fn redact_argv_str<S: AsRef<str>>(argv: &[S]) -> Vec<Cow<'_, str>> {
    let bytes: Vec<&[u8]> = argv.iter().map(|a| a.as_ref().as_bytes()).collect();
    let changed: Vec<Option<Vec<u8>>> = redact_argv(&bytes)
        .into_iter()
        .map(|c| match c {
            Cow::Owned(new) => Some(new),
            Cow::Borrowed(_) => None,
        })
        .collect();
    changed
        .into_iter()
        .zip(argv)
        .map(|(new, orig)| match new {
            None => Cow::Borrowed(orig.as_ref()),
            Some(new) => str_cow(orig.as_ref(), Cow::Owned(new)),
        })
        .collect()
}

/// [`redact_argv`], replacing only the elements that change.
pub fn redact_argv_in_place(argv: &mut [Vec<u8>]) {
    let changed: Vec<Option<Vec<u8>>> = redact_argv(argv)
        .into_iter()
        .map(|c| match c {
            Cow::Owned(new) => Some(new),
            Cow::Borrowed(_) => None,
        })
        .collect();
    for (arg, new) in argv.iter_mut().zip(changed) {
        if let Some(new) = new {
            *arg = new;
        }
    }
}

/// One `KEY=value` environment entry: the key is always kept; the value is
/// replaced unless `allow` allows the key, and an allowed value still goes
/// through the free-text rules. Empty values and entries without `=` are
/// kept as they are.
pub fn redact_env_entry<'a>(entry: &'a [u8], allow: &EnvAllowList) -> Cow<'a, [u8]> {
    let Some(eq) = entry.iter().position(|&b| b == b'=') else {
        return Cow::Borrowed(entry);
    };
    let (key, value) = (&entry[..eq], &entry[eq + 1..]);
    if value.is_empty() || value == MARK {
        return Cow::Borrowed(entry);
    }
    if allow.allows(key) {
        match redact_bytes(value) {
            Cow::Borrowed(_) => Cow::Borrowed(entry),
            Cow::Owned(new) => Cow::Owned([&entry[..=eq], &new].concat()),
        }
    } else {
        Cow::Owned([&entry[..=eq], MARK].concat())
    }
}

/// [`redact_env_entry`] on a string.
pub fn redact_env_str<'a>(entry: &'a str, allow: &EnvAllowList) -> Cow<'a, str> {
    str_cow(entry, redact_env_entry(entry.as_bytes(), allow))
}

/// A command as a record stores it or a screen shows it: [`redact_argv_str`],
/// owned. The one rule for argv everywhere (traces, `world.json`,
/// `substrate-cli ps` and `inspect`).
pub fn redact_command(argv: &[String]) -> Vec<String> {
    redact_argv_str(argv)
        .into_iter()
        .map(Cow::into_owned)
        .collect()
}

/// An environment as a record stores it or a screen shows it: every entry
/// through [`redact_env_str`] with the default [`EnvAllowList`], owned.
/// The one rule for env everywhere, as the trace's exec spans have it.
pub fn redact_environment(env: &[String]) -> Vec<String> {
    let allow = EnvAllowList::standard();
    env.iter()
        .map(|entry| redact_env_str(entry, allow).into_owned())
        .collect()
}

// ---------------------------------------------------------------------------
// argv rules

/// Which program-specific rules apply to a command.
#[derive(Clone, Copy, Default)]
struct Program {
    /// `mysql*`, `mariadb*`: `-pSECRET`; bare `--password` prompts.
    mysql: bool,
    /// `psql` and friends: bare `--password` prompts.
    psql: bool,
    /// `-p X` / `-pX` is a password: sshpass, mongo*.
    p_is_password: bool,
    /// `-a X` is a password (redis-cli) or `user:pass` (httpie).
    a_is_password: bool,
    a_is_userpass: bool,
    /// Container CLIs: `-u user:group`.
    u_is_user_group: bool,
}

impl Program {
    fn of(argv0: &[u8]) -> Program {
        let name = basename(argv0);
        let is = |names: &[&str]| names.iter().any(|n| name == n.as_bytes());
        Program {
            mysql: name.starts_with(b"mysql") || name.starts_with(b"mariadb"),
            psql: name.starts_with(b"pg_")
                || is(&[
                    "psql",
                    "createdb",
                    "dropdb",
                    "createuser",
                    "dropuser",
                    "vacuumdb",
                    "reindexdb",
                    "clusterdb",
                ]),
            p_is_password: name.starts_with(b"mongo") || is(&["sshpass"]),
            a_is_password: is(&["redis-cli", "valkey-cli"]),
            a_is_userpass: is(&["http", "https", "xh"]),
            u_is_user_group: is(&["docker", "podman", "nerdctl", "buildah", "runuser"]),
        }
    }
}

/// What a value is, and so which part of it is cut.
#[derive(Clone, Copy)]
enum Secret {
    /// All of it.
    Whole,
    /// What follows the first `:` (`user:pass`), unless both sides are
    /// numbers (`uid:gid`).
    UserPass,
    /// openssl's `pass:X` (X cut); `env:`, `file:`, `fd:`, `stdin` name where
    /// the password is and are kept; anything else is cut whole.
    OpensslPass,
}

impl Secret {
    /// The range to cut of `value`, which starts at `at`.
    fn range(self, value: &[u8], at: usize) -> Option<(usize, usize)> {
        let end = at + value.len();
        let cut = match self {
            Secret::Whole => (at, end),
            Secret::UserPass => {
                let colon = value.iter().position(|&b| b == b':')?;
                let (user, pass) = (&value[..colon], &value[colon + 1..]);
                let number = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
                if number(user) && number(pass) {
                    return None;
                }
                (at + colon + 1, end)
            }
            Secret::OpensslPass => {
                if value.starts_with(b"pass:") {
                    (at + 5, end)
                } else if [&b"env:"[..], b"file:", b"fd:", b"stdin"]
                    .iter()
                    .any(|p| value.starts_with(p))
                {
                    return None;
                } else {
                    (at, end)
                }
            }
        };
        (cut.0 < cut.1).then_some(cut)
    }
}

/// The positional state of one command's words.
struct Command {
    program: Program,
    /// The program runs another one (`sudo`, `env`, ...): its first word
    /// that is not an option, an option's value, a `VAR=x` or a number
    /// (`timeout 10`) names the program the rules are for.
    wrapper: bool,
    /// A `login` subcommand was seen: `-p` is a password.
    login: bool,
    /// The previous word was an option whose value is this word.
    pending: Option<Secret>,
}

impl Command {
    fn new(argv0: &[u8]) -> Command {
        Command {
            program: Program::of(argv0),
            wrapper: is_one_of(basename(argv0), WRAPPERS),
            login: false,
            pending: None,
        }
    }

    /// One word (after the program name), which starts at `at` in the text
    /// the ranges refer to.
    fn word(&mut self, word: &[u8], at: usize, ranges: &mut Vec<(usize, usize)>) {
        if let Some(secret) = self.pending.take() {
            ranges.extend(secret.range(word, at));
            return;
        }
        if self.wrapper
            && !word.starts_with(b"-")
            && !is_assignment(word)
            && !word.first().is_some_and(u8::is_ascii_digit)
        {
            *self = Command::new(word);
            return;
        }
        match self.option(word) {
            Rule::Nothing => {}
            Rule::Next(secret) => self.pending = Some(secret),
            Rule::Value(offset, secret) => {
                ranges.extend(secret.range(&word[offset..], at + offset))
            }
        }
        if word == b"login" {
            self.login = true;
        }
    }

    fn option(&self, word: &[u8]) -> Rule {
        let p = self.program;
        if let Some(long) = word.strip_prefix(b"--") {
            let (name, value_at) = split_option(long);
            let offset = 2 + value_at.unwrap_or(0);
            let rule = |secret| match value_at {
                Some(_) => Rule::Value(offset, secret),
                None => Rule::Next(secret),
            };
            if option_is_secret(name) {
                if value_at.is_none()
                    && (p.mysql || p.psql)
                    && name.eq_ignore_ascii_case(b"password")
                {
                    return Rule::Nothing;
                }
                return rule(Secret::Whole);
            }
            if name == b"user" && p.u_is_user_group {
                return Rule::Nothing;
            }
            if is_one_of(name, &["user", "proxy-user", "auth"]) {
                return rule(Secret::UserPass);
            }
            return Rule::Nothing;
        }
        let Some(short) = word.strip_prefix(b"-") else {
            return Rule::Nothing;
        };
        let Some((&flag, glued)) = short.split_first() else {
            return Rule::Nothing;
        };
        let short_rule = |secret, separate: bool| {
            if !glued.is_empty() {
                Rule::Value(2, secret)
            } else if separate {
                Rule::Next(secret)
            } else {
                Rule::Nothing
            }
        };
        match flag {
            b'p' if p.p_is_password || self.login => return short_rule(Secret::Whole, true),
            // `mysql -p db` prompts and opens db; only `-pSECRET` is one.
            b'p' if p.mysql => return short_rule(Secret::Whole, false),
            b'a' if p.a_is_password => return short_rule(Secret::Whole, true),
            b'a' if p.a_is_userpass => return short_rule(Secret::UserPass, true),
            b'u' | b'U' if !(flag == b'u' && p.u_is_user_group) => {
                return short_rule(Secret::UserPass, true)
            }
            _ => {}
        }
        // Single-dash long options: Go's flag package, Java's keytool,
        // openssl (`-passin pass:X`).
        if short.len() < 2 {
            return Rule::Nothing;
        }
        let (name, value_at) = split_option(short);
        let openssl = is_one_of(name, &["pass", "passin", "passout"]);
        if openssl || option_is_secret(name) || glued_ends_with(name, "pass") {
            let secret = if openssl {
                Secret::OpensslPass
            } else {
                Secret::Whole
            };
            return match value_at {
                Some(v) => Rule::Value(1 + v, secret),
                None => Rule::Next(secret),
            };
        }
        Rule::Nothing
    }
}

enum Rule {
    Nothing,
    /// The next word is a secret.
    Next(Secret),
    /// The word from this offset is a secret.
    Value(usize, Secret),
}

/// An option without its dashes: its name, and where its `=value` starts.
fn split_option(option: &[u8]) -> (&[u8], Option<usize>) {
    match option.iter().position(|&b| b == b'=') {
        Some(eq) => (&option[..eq], Some(eq + 1)),
        None => (option, None),
    }
}

/// Whether an option's value is a secret: its last word is a secret word,
/// or it ends in `api|secret|auth|private` + `key`, or in a glued secret
/// ending; never for a `no-…` option.
fn option_is_secret(name: &[u8]) -> bool {
    let lower_starts = |p: &[u8]| name.len() >= p.len() && name[..p.len()].eq_ignore_ascii_case(p);
    if lower_starts(b"no-") || lower_starts(b"no_") {
        return false;
    }
    let (mut prev, mut last) = (None, None);
    for word in Words::new(name) {
        prev = last;
        last = Some(word);
    }
    let Some(last) = last else {
        return false;
    };
    is_one_of(last, OPTION_LAST_WORDS)
        || (last.eq_ignore_ascii_case(b"key") && prev.is_some_and(|p| is_one_of(p, KEY_QUALIFIERS)))
        || GLUED_ENDINGS.iter().any(|e| glued_ends_with(name, e))
}

/// The argv rules on the words of a shell command line inside one element
/// (`sh -c "mysql -pX db; curl -u a:b …"`): words are split at whitespace,
/// quotes and command separators trimmed; every command (after `;`, `|`,
/// `&`, `(`, `` ` ``, past `VAR=x` prefixes) gets its own program rules.
fn scan_shell(text: &[u8], ranges: &mut Vec<(usize, usize)>) {
    let mut command: Option<Command> = None;
    let mut at = 0;
    while at < text.len() {
        if text[at].is_ascii_whitespace() {
            at += 1;
            continue;
        }
        let start = at;
        while at < text.len() && !text[at].is_ascii_whitespace() {
            at += 1;
        }
        let raw = &text[start..at];
        let lead = raw
            .iter()
            .take_while(|b| matches!(b, b'"' | b'\'' | b'(' | b'`' | b'$'))
            .count();
        let trail = raw[lead..]
            .iter()
            .rev()
            .take_while(|b| matches!(b, b'"' | b'\'' | b';' | b'&' | b'|' | b')' | b'`'))
            .count();
        let word = &raw[lead..raw.len() - trail];
        let ends_command = raw[raw.len() - trail..]
            .iter()
            .any(|b| matches!(b, b';' | b'&' | b'|'));
        let starts_command =
            raw.starts_with(b"(") || raw.starts_with(b"`") || raw.starts_with(b"$(");
        if starts_command {
            command = None;
        }
        match &mut command {
            _ if word.is_empty() => {}
            None => {
                if !is_assignment(word) {
                    command = Some(Command::new(word));
                }
            }
            Some(cmd) => cmd.word(word, start + lead, ranges),
        }
        if ends_command {
            command = None;
        }
    }
}

// ---------------------------------------------------------------------------
// free-text rules

fn scan_text(input: &[u8], ranges: &mut Vec<(usize, usize)>) {
    for (i, &b) in input.iter().enumerate() {
        match b {
            b'=' => scan_key_value(input, i, ranges),
            b':' => {
                scan_header(input, i, ranges);
                if input[i..].starts_with(b"://") {
                    scan_url(input, i, ranges);
                }
            }
            b'b' | b'B' => scan_bearer(input, i, ranges),
            _ => {}
        }
    }
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-')
}

/// Where the run of bytes satisfying `pred` that ends at `end` starts.
fn run_start(input: &[u8], end: usize, pred: fn(u8) -> bool) -> usize {
    input[..end]
        .iter()
        .rposition(|&b| !pred(b))
        .map_or(0, |i| i + 1)
}

/// The first index at or after `from` whose byte is in `stops`, or the end.
fn find_stop(input: &[u8], from: usize, stops: &[u8]) -> usize {
    input[from..]
        .iter()
        .position(|b| stops.contains(b))
        .map_or(input.len(), |i| from + i)
}

const VALUE_STOPS: &[u8] = b" \t\r\n\x0b\x0c&;\"'";

/// `key=value` with a secret-looking key, `=` at `eq`.
fn scan_key_value(input: &[u8], eq: usize, ranges: &mut Vec<(usize, usize)>) {
    let key = &input[run_start(input, eq, is_key_byte)..eq];
    if key.is_empty() || !is_secret_key(key) {
        return;
    }
    let end = find_stop(input, eq + 1, VALUE_STOPS);
    if end > eq + 1 {
        ranges.push((eq + 1, end));
    }
}

/// `Name: value`, `"name": "value"`, colon at `colon`.
fn scan_header(input: &[u8], colon: usize, ranges: &mut Vec<(usize, usize)>) {
    let quoted_name = colon > 0 && input[colon - 1] == b'"';
    let name_end = colon - usize::from(quoted_name);
    let name_start = run_start(input, name_end, is_name_byte);
    let name = &input[name_start..name_end];
    if name.is_empty() || !(is_one_of(name, SECRET_HEADERS) || is_secret_key(name)) {
        return;
    }
    // `https://x-access-token:TOKEN@host` is userinfo: the URL rule's.
    if input[..name_start].ends_with(b"://") {
        return;
    }
    let mut start = colon + 1;
    while start < input.len() && matches!(input[start], b' ' | b'\t') {
        start += 1;
    }
    let end = match input.get(start) {
        Some(&q @ (b'"' | b'\'')) => {
            start += 1;
            find_stop(input, start, &[q, b'\r', b'\n'])
        }
        _ if quoted_name => find_stop(input, start, b"\r\n\"',}"),
        _ => find_stop(input, start, b"\r\n\"'"),
    };
    // Trailing blanks are not part of a value.
    let end = start + input[start..end].trim_ascii_end().len();
    if end <= start {
        return;
    }
    let value = &input[start..end];
    // `Authorization: <scheme> <credentials>`: the scheme is no secret.
    if is_one_of(name, &["authorization", "proxy-authorization"]) {
        let scheme = value.iter().take_while(|b| b.is_ascii_alphabetic()).count();
        let gap = value[scheme..].iter().take_while(|&&b| b == b' ').count();
        if scheme > 0 && gap > 0 && scheme + gap < value.len() {
            ranges.push((start + scheme + gap, end));
            return;
        }
    }
    ranges.push((start, end));
}

/// `Bearer <token>`, any case, with `b` at `at`.
fn scan_bearer(input: &[u8], at: usize, ranges: &mut Vec<(usize, usize)>) {
    const WORD: &[u8] = b"bearer";
    let Some(candidate) = input.get(at..at + WORD.len()) else {
        return;
    };
    if !candidate.eq_ignore_ascii_case(WORD) || (at > 0 && input[at - 1].is_ascii_alphanumeric()) {
        return;
    }
    let mut start = at + WORD.len();
    let gap_start = start;
    while start < input.len() && matches!(input[start], b' ' | b'\t') {
        start += 1;
    }
    if start == gap_start {
        return;
    }
    // RFC 6750's b64token: ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/", then "="s.
    let len = input[start..]
        .iter()
        .take_while(|&&b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b))
        .count();
    if len > 0 {
        ranges.push((start, start + len));
    }
}

/// `scheme://userinfo@host`, with `://` at `colon`.
fn scan_url(input: &[u8], colon: usize, ranges: &mut Vec<(usize, usize)>) {
    let scheme_start = run_start(input, colon, |b| {
        b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')
    });
    let scheme = &input[scheme_start..colon];
    if !scheme.first().is_some_and(u8::is_ascii_alphabetic) {
        return;
    }
    let auth_start = colon + 3;
    let auth_end = find_stop(input, auth_start, b"/?# \t\r\n\"'");
    let authority = &input[auth_start..auth_end];
    let Some(at) = authority.iter().rposition(|&b| b == b'@') else {
        return;
    };
    let userinfo = &authority[..at];
    match userinfo.iter().position(|&b| b == b':') {
        // GitHub's `https://TOKEN:x-oauth-basic@github.com`: the user is the secret.
        Some(c) if userinfo[c + 1..].eq_ignore_ascii_case(b"x-oauth-basic") => {
            ranges.push((auth_start, auth_start + c));
        }
        Some(c) if c + 1 < at => ranges.push((auth_start + c + 1, auth_start + at)),
        Some(_) => {}
        None if at > 0 && !is_one_of(scheme, SSH_SCHEMES) => {
            ranges.push((auth_start, auth_start + at));
        }
        None => {}
    }
}

// ---------------------------------------------------------------------------
// helpers

/// Programs that run the program named by their arguments.
const WRAPPERS: &[&str] = &[
    "sudo", "doas", "env", "exec", "nohup", "time", "command", "xargs", "nice", "ionice",
    "timeout", "stdbuf", "setsid",
];

fn basename(path: &[u8]) -> &[u8] {
    path.rsplit(|&b| b == b'/').next().unwrap_or_default()
}

/// A shell variable assignment, `NAME=value`.
fn is_assignment(word: &[u8]) -> bool {
    word.iter().position(|&b| b == b'=').is_some_and(|eq| {
        eq > 0
            && word[..eq]
                .iter()
                .all(|&b| b == b'_' || b.is_ascii_alphanumeric())
    })
}

fn is_one_of(word: &[u8], list: &[&str]) -> bool {
    list.iter().any(|w| word.eq_ignore_ascii_case(w.as_bytes()))
}

/// Whether the ASCII letters and digits of `key`, lowercased, end with `end`.
fn glued_ends_with(key: &[u8], end: &str) -> bool {
    let mut alnum = key.iter().rev().filter(|b| b.is_ascii_alphanumeric());
    end.bytes()
        .rev()
        .all(|e| alnum.next().is_some_and(|k| k.to_ascii_lowercase() == e))
}

/// The words of a key: runs of ASCII letters and digits, also split where
/// a lowercase letter or digit meets an uppercase one (`apiKey`).
struct Words<'a> {
    key: &'a [u8],
    at: usize,
}

impl<'a> Words<'a> {
    fn new(key: &'a [u8]) -> Words<'a> {
        Words { key, at: 0 }
    }
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let k = self.key;
        while self.at < k.len() && !k[self.at].is_ascii_alphanumeric() {
            self.at += 1;
        }
        if self.at >= k.len() {
            return None;
        }
        let start = self.at;
        self.at += 1;
        while self.at < k.len() {
            let (prev, cur) = (k[self.at - 1], k[self.at]);
            let hump =
                cur.is_ascii_uppercase() && (prev.is_ascii_lowercase() || prev.is_ascii_digit());
            if !cur.is_ascii_alphanumeric() || hump {
                break;
            }
            self.at += 1;
        }
        Some(&k[start..self.at])
    }
}

/// Replaces the ranges, merged when they overlap or touch (so that a second
/// pass finds one marker, not two), with the marker; borrows when none changes
/// anything.
fn apply(input: &[u8], mut ranges: Vec<(usize, usize)>) -> Cow<'_, [u8]> {
    ranges.retain(|&(s, e)| s < e && e <= input.len() && !redacted_already(&input[s..e]));
    ranges.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (s, e) in ranges {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    if merged.is_empty() {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len());
    let mut at = 0;
    for (s, e) in merged {
        out.extend_from_slice(&input[at..s]);
        out.extend_from_slice(MARK);
        at = e;
    }
    out.extend_from_slice(&input[at..]);
    Cow::Owned(out)
}

/// Whether a cut starts with the marker: it was redacted already, by this
/// rule or another whose value ended elsewhere (a header value runs to the
/// end of the line, so on a second pass it may cover a marker and what the
/// first pass kept after it). Keeping it makes a second pass change nothing.
fn redacted_already(cut: &[u8]) -> bool {
    cut.trim_ascii_start().starts_with(MARK)
}

/// Every cut starts and ends next to an ASCII byte or at an end, so UTF-8
/// in gives UTF-8 out; the lossy branch is only a guard.
fn str_cow<'a>(orig: &'a str, bytes: Cow<'a, [u8]>) -> Cow<'a, str> {
    match bytes {
        Cow::Borrowed(_) => Cow::Borrowed(orig),
        Cow::Owned(v) => Cow::Owned(
            String::from_utf8(v)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        ),
    }
}

#[cfg(test)]
mod tests;
