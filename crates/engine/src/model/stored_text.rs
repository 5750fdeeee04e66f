//! How the enums the history keeps as text (`runs.status`, `run_actions.action`,
//! `run_actions.outcome`, `runs.guard`) are read back: from a `TEXT` column of either
//! database, by their own words (`as_str` / `parse`), never by a database type of their own.
//!
//! sqlx's derive names a PostgreSQL type after the enum (`ChangeKind`) and so refuses the
//! `TEXT` columns the history uses; these impls read them as text on every database whose
//! `&str` does. They are written by [`stored_as_text!`] for each enum.

/// Implements `sqlx::Type` and `sqlx::Decode` for `$ty` as text, with `$parse` (text →
/// `Option<$ty>`); an unknown word is a decode error that names it.
macro_rules! stored_as_text {
    ($ty:ty, $parse:expr) => {
        impl<DB: sqlx::Database> sqlx::Type<DB> for $ty
        where
            str: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <str as sqlx::Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $ty
        where
            &'r str: sqlx::Decode<'r, DB>,
        {
            fn decode(
                value: <DB as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&'r str as sqlx::Decode<'r, DB>>::decode(value)?;
                let parse: fn(&str) -> Option<$ty> = $parse;
                parse(text).ok_or_else(|| {
                    format!(
                        "{:?} is not a known {}",
                        text.escape_debug().to_string(),
                        stringify!($ty)
                    )
                    .into()
                })
            }
        }
    };
}
pub(crate) use stored_as_text;
