//! SQL text shared by the backends: the listing query (keyset pagination, prefix pushdown)
//! is built once here, and each backend keeps only what differs (placeholders, hints).

use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::{Error, ListKey, ListOrder, ListQuery, Result, SecretRow, VersionRow};

/// How a backend spells its query parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// `?`, bound in order.
    Sqlite,
    /// `$1`, `$2`, ….
    Postgres,
}

/// A bound parameter of a query built at run time.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Int(i64),
    Text(String),
}

/// A query built at run time with its parameters.
#[derive(Debug)]
pub(crate) struct Sql {
    pub(crate) text: String,
    pub(crate) binds: Vec<Bind>,
    dialect: Dialect,
}

impl Sql {
    pub(crate) fn new(dialect: Dialect, text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            binds: Vec::new(),
            dialect,
        }
    }

    pub(crate) fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }

    /// Appends a placeholder for `b`.
    pub(crate) fn bind(&mut self, b: Bind) {
        self.binds.push(b);
        match self.dialect {
            Dialect::Sqlite => self.text.push('?'),
            Dialect::Postgres => self.text.push_str(&format!("${}", self.binds.len())),
        }
    }

    /// Appends "`col` starts with `prefix`" as an index range where the prefix allows it.
    pub(crate) fn push_prefix(&mut self, col: &str, prefix: &str) {
        match prefix_upper_bound(prefix) {
            Some(upper) => {
                self.push(&format!("({col} >= "));
                self.bind(Bind::Text(prefix.to_owned()));
                self.push(&format!(" AND {col} < "));
                self.bind(Bind::Text(upper));
                self.push(")");
            }
            None => {
                // Both count characters, as `chars()` does.
                match self.dialect {
                    Dialect::Sqlite => self.push(&format!("substr({col}, 1, ")),
                    Dialect::Postgres => self.push(&format!("left({col}, CAST(")),
                }
                self.bind(Bind::Int(prefix.chars().count() as i64));
                match self.dialect {
                    Dialect::Sqlite => self.push(") = "),
                    Dialect::Postgres => self.push(" AS INTEGER)) = "),
                }
                self.bind(Bind::Text(prefix.to_owned()));
            }
        }
    }

    /// Appends `(p1 OR p2 …)` for a group of prefixes of `col`.
    pub(crate) fn push_prefix_group(&mut self, col: &str, group: &[String]) {
        self.push("(");
        for (i, p) in group.iter().enumerate() {
            if i > 0 {
                self.push(" OR ");
            }
            self.push_prefix(col, p);
        }
        self.push(")");
    }
}

/// The smallest string above every string that starts with `prefix`, for ASCII prefixes
/// (both backends compare text bytewise); `None` where a range cannot be formed.
pub(crate) fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let last = *prefix.as_bytes().last()?;
    if !prefix.is_ascii() || last >= 0x7f {
        return None;
    }
    let mut upper = prefix[..prefix.len() - 1].to_owned();
    upper.push(char::from(last + 1));
    Some(upper)
}

/// The sort expression of an order (served by the index of that order).
pub(crate) fn order_key(order: ListOrder) -> &'static str {
    match order {
        ListOrder::Created => "created_ms",
        ListOrder::Name => "name",
        ListOrder::LastChanged => "last_changed_ms",
        ListOrder::LastAccessed => "COALESCE(last_accessed_ms, -1)",
    }
}

/// One page of a listing as one query: `SELECT cols FROM secrets WHERE …` with the keyset
/// position, the deletion filter, the name and tag-key prefixes, the order and the limit.
/// `name_col` is how name prefixes refer to the name (a backend may pass an expression that
/// keeps its planner off the name index).
pub(crate) fn list_page(dialect: Dialect, cols: &str, q: &ListQuery, name_col: &str) -> Sql {
    let key = order_key(q.order);
    let (cmp, dir) = if q.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    let mut sql = Sql::new(
        dialect,
        format!("SELECT {cols} FROM secrets WHERE namespace = "),
    );
    sql.bind(Bind::Text(q.namespace.clone()));
    if !q.include_deleted {
        sql.push(" AND deleted_ms IS NULL");
    }
    if let Some((after, uid)) = &q.after {
        sql.push(&format!(" AND ({key}, uid) {cmp} ("));
        sql.bind(match after {
            ListKey::Int(i) => Bind::Int(*i),
            ListKey::Str(s) => Bind::Text(s.clone()),
        });
        sql.push(", ");
        sql.bind(Bind::Text(uid.clone()));
        sql.push(")");
    }
    for group in &q.name_prefixes {
        sql.push(" AND ");
        sql.push_prefix_group(name_col, group);
    }
    for group in &q.tag_key_prefixes {
        sql.push(" AND uid IN (SELECT secret_uid FROM secret_tags WHERE ");
        sql.push_prefix_group("key", group);
        sql.push(")");
    }
    sql.push(&format!(" ORDER BY {key} {dir}, uid {dir} LIMIT "));
    sql.bind(Bind::Int(q.limit));
    sql
}

/// The `[key, value]` pairs of a secret document's `tags`, as the tag index holds them
/// (what SQLite's triggers extract with `json_each(doc, '$.tags')`).
pub(crate) fn doc_tags(doc: &str) -> Vec<(String, String)> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(doc) else {
        return Vec::new();
    };
    let Some(tags) = v.get("tags").and_then(|t| t.as_array()) else {
        return Vec::new();
    };
    let text = |v: Option<&serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    };
    tags.iter()
        .filter_map(|t| Some((text(t.get(0))?, text(t.get(1))?)))
        .collect()
}

/// The JSON text of a version's staging labels.
pub(crate) fn stages_json(stages: &[String]) -> String {
    serde_json::to_string(stages).unwrap_or_else(|_| "[]".to_owned())
}

/// A `secrets` row (the columns every backend selects by the same names) as a [`SecretRow`].
pub(crate) fn secret_row<'r, R>(r: &'r R) -> Result<SecretRow>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(SecretRow {
        uid: r.try_get("uid")?,
        namespace: r.try_get("namespace")?,
        name: r.try_get("name")?,
        arn: r.try_get("arn")?,
        created_ms: r.try_get("created_ms")?,
        last_changed_ms: r.try_get("last_changed_ms")?,
        last_accessed_ms: r.try_get("last_accessed_ms")?,
        deleted_ms: r.try_get("deleted_ms")?,
        rotation_due_ms: r.try_get("rotation_due_ms")?,
        replication_due_ms: r.try_get("replication_due_ms")?,
        revision: r.try_get("revision")?,
        doc: r.try_get("doc")?,
    })
}

/// A `versions` row as its secret's id and a [`VersionRow`].
pub(crate) fn version_row<'r, R>(r: &'r R) -> Result<(String, VersionRow)>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
{
    let stages: String = r.try_get("stages")?;
    let stages: Vec<String> = serde_json::from_str(&stages)
        .map_err(|e| Error::Corrupt(format!("version stages: {e}")))?;
    Ok((
        r.try_get("secret_uid")?,
        VersionRow {
            version_id: r.try_get("version_id")?,
            seq: r.try_get("seq")?,
            created_ms: r.try_get("created_ms")?,
            last_accessed_ms: r.try_get("last_accessed_ms")?,
            stages,
            kms_key_id: r.try_get("kms_key_id")?,
            has_value: r.try_get("has_value")?,
        },
    ))
}
