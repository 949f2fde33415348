//! Message templates as a campaign file writes them (`{{variable}}`, minijinja): the voicemail
//! and safe-harbor messages and the follow-up texts, checked when the file is loaded and
//! rendered with one contact's fields when they are used.

use std::collections::BTreeMap;

/// Checks that `template` parses; `Err` holds the parser's reason (for a file/line/key error).
pub fn check(template: &str) -> Result<(), String> {
    minijinja::Environment::new()
        .template_from_str(template)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Renders a `{{variable}}` template with contact fields; a missing variable is an error.
///
/// Errors: the template does not parse or names a variable the contact does not have.
pub fn render(template: &str, fields: &BTreeMap<String, String>) -> Result<String, minijinja::Error> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.render_str(template, fields)
}
