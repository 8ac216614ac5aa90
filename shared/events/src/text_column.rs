//! Names stored in TEXT columns (a platform, a post's status): sqlx writes the name and reads it
//! back parsed, so a row never carries a `String` that "should be" one of them, and a name the
//! type does not know is a decode error that says so.

#[doc(hidden)]
pub use sqlx as __sqlx;

/// Implements sqlx's `Type`, `Encode`, `Decode` and `PgHasArrayType` (Postgres) for `$ty`, stored
/// as its name in a TEXT column: written as `$ty::as_str(self)`, read with `$parse: fn(&str) ->
/// Option<$ty>`. A name `$parse` refuses fails the read with "`"<name>" is not a known <what>`".
#[macro_export]
macro_rules! text_column {
    ($ty:ty, $what:literal, $parse:expr) => {
        const _: () = {
            use $crate::text_column::__sqlx::{
                error::BoxDynError,
                postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueRef, Postgres},
                Decode, Encode, Type,
            };

            impl Type<Postgres> for $ty {
                fn type_info() -> PgTypeInfo {
                    <&str as Type<Postgres>>::type_info()
                }
                fn compatible(ty: &PgTypeInfo) -> bool {
                    <&str as Type<Postgres>>::compatible(ty)
                }
            }

            impl PgHasArrayType for $ty {
                fn array_type_info() -> PgTypeInfo {
                    <&str as PgHasArrayType>::array_type_info()
                }
                fn array_compatible(ty: &PgTypeInfo) -> bool {
                    <&str as PgHasArrayType>::array_compatible(ty)
                }
            }

            impl<'q> Encode<'q, Postgres> for $ty {
                fn encode_by_ref(
                    &self,
                    buf: &mut PgArgumentBuffer,
                ) -> Result<$crate::text_column::__sqlx::encode::IsNull, BoxDynError> {
                    <&str as Encode<'q, Postgres>>::encode(self.as_str(), buf)
                }
            }

            impl<'r> Decode<'r, Postgres> for $ty {
                fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
                    let name = <&str as Decode<'r, Postgres>>::decode(value)?;
                    let parse: fn(&str) -> Option<$ty> = $parse;
                    parse(name).ok_or_else(|| format!("{name:?} is not a known {}", $what).into())
                }
            }
        };
    };
}

crate::text_column!(crate::Platform, "platform", |name| name.parse().ok());
