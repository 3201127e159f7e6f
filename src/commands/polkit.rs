//! The polkit rule that `install` writes for `unit = …` commands: it lets
//! the service's user start and stop exactly the units named, and nothing
//! else (no restart, no other unit, no other action).
//!
//! Why polkit: the hardened unit (`NoNewPrivileges=yes`, no capabilities)
//! rules out sudo and setuid helpers, but `systemctl start` as an ordinary
//! user is a D-Bus call to systemd, which asks polkit whether the caller may
//! `org.freedesktop.systemd1.manage-units`; systemd passes the unit and the
//! verb with the question (since systemd 226), so a rule can name them.
//! JavaScript rules need polkit 0.106 or later (Debian and Raspberry Pi OS
//! from bookworm on; bullseye's polkit 0.105 reads only `.pkla` files, which
//! cannot name a unit).
//!
//! Pure text: writing it (and removing it when no command names a unit) is
//! `install`'s job.

/// Where `install` writes the rule.
pub const RULE_PATH: &str = "/etc/polkit-1/rules.d/50-majortom.rules";

/// The rule for `user` and `units` (full names such as `kodi.service`, as
/// [`crate::config::unit_name`] gives them), or `None` when there are no
/// units: then no rule should exist at all.
pub fn rule(user: &str, units: &[&str]) -> Option<String> {
    let mut units: Vec<&str> = units.to_vec();
    units.sort_unstable();
    units.dedup();
    if units.is_empty() {
        return None;
    }
    // JSON strings are JavaScript string literals; the names are checked
    // by the config already, this keeps the rule's syntax whole regardless.
    let quoted: Vec<String> = units.iter().map(|unit| js_string(unit)).collect();
    Some(format!(
        r#"// Written by `majortom install` from the `unit = …` commands in
// /etc/majortom/majortom.toml; rewritten by every install, removed by
// uninstall. It lets the majortom service start and stop these units and
// nothing else.
polkit.addRule(function (action, subject) {{
    if (action.id != "org.freedesktop.systemd1.manage-units" || subject.user != {user}) {{
        return polkit.Result.NOT_HANDLED;
    }}
    var units = [{units}];
    var verb = action.lookup("verb");
    if ((verb == "start" || verb == "stop") && units.indexOf(action.lookup("unit")) >= 0) {{
        return polkit.Result.YES;
    }}
    return polkit.Result.NOT_HANDLED;
}});
"#,
        user = js_string(user),
        units = quoted.join(", "),
    ))
}

fn js_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_ascii_graphic() || c == ' ' => out.push(c),
            // Control characters, line separators and the rest: escaped.
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_units_should_mean_no_rule() {
        assert_eq!(rule("majortom", &[]), None);
    }

    #[test]
    fn the_rule_should_allow_start_and_stop_of_exactly_the_named_units_for_the_service_user() {
        let text = rule("majortom", &["kodi.service", "backup.timer", "kodi.service"]).expect("a rule");
        assert_eq!(
            text.lines().filter(|l| !l.starts_with("//")).collect::<Vec<_>>(),
            vec![
                "polkit.addRule(function (action, subject) {",
                r#"    if (action.id != "org.freedesktop.systemd1.manage-units" || subject.user != "majortom") {"#,
                "        return polkit.Result.NOT_HANDLED;",
                "    }",
                r#"    var units = ["backup.timer", "kodi.service"];"#,
                r#"    var verb = action.lookup("verb");"#,
                r#"    if ((verb == "start" || verb == "stop") && units.indexOf(action.lookup("unit")) >= 0) {"#,
                "        return polkit.Result.YES;",
                "    }",
                "    return polkit.Result.NOT_HANDLED;",
                "});",
            ]
        );
        // Only one place says YES, and no verb but start and stop appears.
        assert_eq!(text.matches("Result.YES").count(), 1);
        for verb in ["restart", "reload", "kill", "enable"] {
            assert!(!text.contains(&format!("\"{verb}\"")), "{verb}");
        }
    }

    #[test]
    fn names_should_stay_string_literals_whatever_they_hold() {
        assert_eq!(js_string("kodi.service"), r#""kodi.service""#);
        assert_eq!(js_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(js_string("a\nb\u{2028}"), r#""a\u000ab\u2028""#);
        let text = rule("majortom", &["x\"); polkit.Result.YES; (\""]).expect("a rule");
        assert!(text.contains(r#"["x\"); polkit.Result.YES; (\""]"#), "{text}");
    }
}
