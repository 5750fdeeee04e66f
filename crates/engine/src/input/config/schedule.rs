//! `schedule` and `timezone`: when the daemon runs, a cron expression with seconds read the
//! way the scheduler reads it (one parser for both, so what validates is what runs), and
//! the IANA zone it is read in.

use super::checker::Checker;
use super::ConfigError;
use std::str::FromStr;

pub(super) fn default_schedule() -> String {
    "0 */15 * * * *".into()
}

impl Checker<'_> {
    pub(super) fn schedule(&self, expr: &str) -> Result<(), ConfigError> {
        check_schedule(expr).map_err(|m| self.error(&["schedule"], m))
    }

    /// `timezone`, UTC when absent.
    pub(super) fn timezone(&self, name: Option<&str>) -> Result<chrono_tz::Tz, ConfigError> {
        let Some(name) = name else {
            return Ok(chrono_tz::UTC);
        };
        chrono_tz::Tz::from_str(name).map_err(|_| {
            self.error(
                &["timezone"],
                format!("unknown time zone {name:?} (use an IANA name such as Europe/Paris)"),
            )
        })
    }
}

/// Checks a cron expression with seconds (6 or 7 fields), as the scheduler reads it.
pub fn check_schedule(expr: &str) -> Result<(), String> {
    let cron = parse_schedule(expr)?;
    match cron.find_next_occurrence(&chrono::Utc::now(), false) {
        Ok(_) => Ok(()),
        Err(_) => Err(format!(
            "{expr:?} never fires (no matching time within a year), e.g. a day that no month has"
        )),
    }
}

/// Parses a cron expression with seconds (6 fields, or 7 with a year).
pub fn parse_schedule(expr: &str) -> Result<croner::Cron, String> {
    let fields = expr.split_whitespace().count();
    if !(6..=7).contains(&fields) {
        return Err(format!(
            "{expr:?} has {fields} fields; write cron with seconds, e.g. \"0 */15 * * * *\""
        ));
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .year(croner::parser::Year::Optional)
        .build()
        .parse(expr)
        .map_err(|e| format!("{expr:?} is not a valid cron expression: {e}"))
}

#[cfg(test)]
mod tests {
    use super::check_schedule;

    #[test]
    fn schedules() {
        assert!(check_schedule("0 */15 * * * *").is_ok());
        assert!(check_schedule("*/15 * * * *").is_err());
        assert!(check_schedule("0 61 * * * *").is_err());
        let never = check_schedule("0 0 0 30 2 *").unwrap_err();
        assert!(never.contains("never fires"), "{never}");
    }
}
