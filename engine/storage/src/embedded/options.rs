//! Pure text helpers: server settings, pg_ctl's shell-quoted `-o` string, libpq quoting.

use std::path::Path;

use super::ClusterOptions;

/// The server settings for a start: private socket only, plus test and caller settings.
pub(super) fn server_settings(
    socket_dir: &Path,
    port: u16,
    opts: &ClusterOptions,
) -> Vec<(String, String)> {
    // A double-quoted list element keeps a socket path with spaces or commas intact.
    let socket_list = format!("\"{}\"", socket_dir.to_string_lossy().replace('"', "\"\""));
    let listen = opts
        .tcp
        .map(|addr| addr.ip().to_string())
        .unwrap_or_default();
    let mut settings = vec![
        ("listen_addresses".to_owned(), listen),
        ("unix_socket_directories".to_owned(), socket_list),
        ("port".to_owned(), port.to_string()),
    ];
    if opts.unsafe_fast {
        for name in ["fsync", "synchronous_commit", "full_page_writes"] {
            settings.push((name.to_owned(), "off".to_owned()));
        }
    }
    settings.extend(opts.extra_settings.iter().cloned());
    settings
}

/// pg_ctl's `-o` string; pg_ctl hands it to /bin/sh, so every `name=value` is single-quoted.
pub(super) fn postgres_options(settings: &[(String, String)]) -> String {
    let quoted: Vec<String> = settings
        .iter()
        .map(|(name, value)| format!("-c '{}'", format!("{name}={value}").replace('\'', r"'\''")))
        .collect();
    quoted.join(" ")
}

/// Quotes a libpq key=value value when it holds spaces, quotes or backslashes.
pub(super) fn quote_conninfo(value: &str) -> String {
    if !value.is_empty() && !value.contains([' ', '\'', '\\']) {
        return value.to_owned();
    }
    format!("'{}'", value.replace('\\', r"\\").replace('\'', r"\'"))
}

pub(super) fn tail_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(count)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_quoted_for_the_shell() {
        let settings = vec![
            ("listen_addresses".to_owned(), String::new()),
            ("application_name".to_owned(), "it's".to_owned()),
        ];
        assert_eq!(
            postgres_options(&settings),
            r"-c 'listen_addresses=' -c 'application_name=it'\''s'"
        );
    }

    #[test]
    fn conninfo_values_with_spaces_are_quoted() {
        assert_eq!(quote_conninfo("/tmp/run"), "/tmp/run");
        assert_eq!(quote_conninfo("/tmp/my run"), "'/tmp/my run'");
        assert_eq!(quote_conninfo(r"a'b\c"), r"'a\'b\\c'");
    }
}
