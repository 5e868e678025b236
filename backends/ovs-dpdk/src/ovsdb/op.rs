//! Typed RFC 7047 §5.2 transaction operations (insert, select, update, mutate, delete, wait,
//! comment) and their results. Builds JSON only: never talks to a socket.

use super::datum::{as_integer, as_uuid, Row, Uuid};
use super::error::OvsdbError;
use serde_json::{json, Map, Value};
use std::time::Duration;

/// Condition functions (RFC 7047 §5.1 `<function>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Lt,
    Le,
    Eq,
    Ne,
    Ge,
    Gt,
    Includes,
    Excludes,
}

impl Function {
    pub fn as_str(self) -> &'static str {
        match self {
            Function::Lt => "<",
            Function::Le => "<=",
            Function::Eq => "==",
            Function::Ne => "!=",
            Function::Ge => ">=",
            Function::Gt => ">",
            Function::Includes => "includes",
            Function::Excludes => "excludes",
        }
    }
}

/// `[column, function, value]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub column: String,
    pub function: Function,
    pub value: Value,
}

impl Condition {
    pub fn new(column: impl Into<String>, function: Function, value: Value) -> Self {
        Condition { column: column.into(), function, value }
    }

    pub fn eq(column: impl Into<String>, value: Value) -> Self {
        Self::new(column, Function::Eq, value)
    }

    pub fn ne(column: impl Into<String>, value: Value) -> Self {
        Self::new(column, Function::Ne, value)
    }

    /// For sets and maps: the column contains every element of `value`.
    pub fn includes(column: impl Into<String>, value: Value) -> Self {
        Self::new(column, Function::Includes, value)
    }

    pub fn excludes(column: impl Into<String>, value: Value) -> Self {
        Self::new(column, Function::Excludes, value)
    }

    /// The row with this UUID.
    pub fn uuid(uuid: &Uuid) -> Self {
        Self::eq("_uuid", uuid.to_json())
    }

    pub fn to_json(&self) -> Value {
        json!([self.column, self.function.as_str(), self.value])
    }
}

/// Mutators (RFC 7047 §5.1 `<mutator>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutator {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Insert,
    Delete,
}

impl Mutator {
    pub fn as_str(self) -> &'static str {
        match self {
            Mutator::Add => "+=",
            Mutator::Sub => "-=",
            Mutator::Mul => "*=",
            Mutator::Div => "/=",
            Mutator::Mod => "%=",
            Mutator::Insert => "insert",
            Mutator::Delete => "delete",
        }
    }
}

/// `[column, mutator, value]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    pub column: String,
    pub mutator: Mutator,
    pub value: Value,
}

impl Mutation {
    pub fn new(column: impl Into<String>, mutator: Mutator, value: Value) -> Self {
        Mutation { column: column.into(), mutator, value }
    }

    /// Add elements to a set or pairs to a map (existing keys of a map are kept, not replaced).
    pub fn insert(column: impl Into<String>, value: Value) -> Self {
        Self::new(column, Mutator::Insert, value)
    }

    /// Remove elements from a set, or keys (a set) / pairs (a map) from a map.
    pub fn delete(column: impl Into<String>, value: Value) -> Self {
        Self::new(column, Mutator::Delete, value)
    }

    /// `column += n` on an integer column (e.g. `next_cfg`).
    pub fn add(column: impl Into<String>, n: i64) -> Self {
        Self::new(column, Mutator::Add, json!(n))
    }

    pub fn to_json(&self) -> Value {
        json!([self.column, self.mutator.as_str(), self.value])
    }
}

/// The `until` of a wait operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitUntil {
    /// Wait until the selected rows equal `rows`.
    Equal,
    /// Wait until they differ from `rows`.
    NotEqual,
}

/// One operation of a `transact`.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Insert {
        table: String,
        row: Row,
        /// Lets later operations of the same transaction refer to the new row with
        /// `["named-uuid", name]`.
        uuid_name: Option<String>,
    },
    Select {
        table: String,
        conditions: Vec<Condition>,
        /// `None` selects every column.
        columns: Option<Vec<String>>,
    },
    Update {
        table: String,
        conditions: Vec<Condition>,
        row: Row,
    },
    Mutate {
        table: String,
        conditions: Vec<Condition>,
        mutations: Vec<Mutation>,
    },
    Delete {
        table: String,
        conditions: Vec<Condition>,
    },
    /// Blocks the transaction until the rows matching `conditions`, projected on `columns`, are
    /// (or are not) exactly `rows`; fails with `"timed out"` after `timeout_ms` (ovsdb-server
    /// waits forever when it is absent, so the client always sends one).
    Wait {
        table: String,
        conditions: Vec<Condition>,
        columns: Vec<String>,
        until: WaitUntil,
        rows: Vec<Row>,
        timeout_ms: u64,
    },
    Comment {
        comment: String,
    },
}

impl Op {
    pub fn insert(table: impl Into<String>, row: Row) -> Op {
        Op::Insert { table: table.into(), row, uuid_name: None }
    }

    /// Insert with a `uuid-name`, to reference the row in the same transaction.
    pub fn insert_named(table: impl Into<String>, uuid_name: impl Into<String>, row: Row) -> Op {
        Op::Insert { table: table.into(), row, uuid_name: Some(uuid_name.into()) }
    }

    pub fn select(table: impl Into<String>, conditions: Vec<Condition>, columns: &[&str]) -> Op {
        Op::Select { table: table.into(), conditions, columns: Some(columns.iter().map(|c| c.to_string()).collect()) }
    }

    pub fn select_all(table: impl Into<String>, conditions: Vec<Condition>) -> Op {
        Op::Select { table: table.into(), conditions, columns: None }
    }

    pub fn update(table: impl Into<String>, conditions: Vec<Condition>, row: Row) -> Op {
        Op::Update { table: table.into(), conditions, row }
    }

    pub fn mutate(table: impl Into<String>, conditions: Vec<Condition>, mutations: Vec<Mutation>) -> Op {
        Op::Mutate { table: table.into(), conditions, mutations }
    }

    pub fn delete(table: impl Into<String>, conditions: Vec<Condition>) -> Op {
        Op::Delete { table: table.into(), conditions }
    }

    pub fn wait(
        table: impl Into<String>,
        conditions: Vec<Condition>,
        columns: &[&str],
        until: WaitUntil,
        rows: Vec<Row>,
        timeout: Duration,
    ) -> Op {
        Op::Wait {
            table: table.into(),
            conditions,
            columns: columns.iter().map(|c| c.to_string()).collect(),
            until,
            rows,
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// Recorded in ovsdb-server's log with the transaction: says who made a change and why.
    pub fn comment(comment: impl Into<String>) -> Op {
        Op::Comment { comment: comment.into() }
    }

    /// The RFC 7047 `op` name.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Insert { .. } => "insert",
            Op::Select { .. } => "select",
            Op::Update { .. } => "update",
            Op::Mutate { .. } => "mutate",
            Op::Delete { .. } => "delete",
            Op::Wait { .. } => "wait",
            Op::Comment { .. } => "comment",
        }
    }

    pub fn table(&self) -> Option<&str> {
        match self {
            Op::Insert { table, .. }
            | Op::Select { table, .. }
            | Op::Update { table, .. }
            | Op::Mutate { table, .. }
            | Op::Delete { table, .. }
            | Op::Wait { table, .. } => Some(table),
            Op::Comment { .. } => None,
        }
    }

    /// How long ovsdb-server may hold the transaction for this op (a blocking `wait`).
    pub fn server_wait(&self) -> Duration {
        match self {
            Op::Wait { timeout_ms, .. } => Duration::from_millis(*timeout_ms),
            _ => Duration::ZERO,
        }
    }

    pub fn to_json(&self) -> Value {
        fn conds(c: &[Condition]) -> Value {
            Value::Array(c.iter().map(Condition::to_json).collect())
        }
        let mut o = Map::new();
        o.insert("op".into(), json!(self.name()));
        if let Some(t) = self.table() {
            o.insert("table".into(), json!(t));
        }
        match self {
            Op::Insert { row, uuid_name, .. } => {
                o.insert("row".into(), Value::Object(row.clone()));
                if let Some(n) = uuid_name {
                    o.insert("uuid-name".into(), json!(n));
                }
            }
            Op::Select { conditions, columns, .. } => {
                o.insert("where".into(), conds(conditions));
                if let Some(c) = columns {
                    o.insert("columns".into(), json!(c));
                }
            }
            Op::Update { conditions, row, .. } => {
                o.insert("where".into(), conds(conditions));
                o.insert("row".into(), Value::Object(row.clone()));
            }
            Op::Mutate { conditions, mutations, .. } => {
                o.insert("where".into(), conds(conditions));
                o.insert("mutations".into(), Value::Array(mutations.iter().map(Mutation::to_json).collect()));
            }
            Op::Delete { conditions, .. } => {
                o.insert("where".into(), conds(conditions));
            }
            Op::Wait { conditions, columns, until, rows, timeout_ms, .. } => {
                o.insert("where".into(), conds(conditions));
                o.insert("columns".into(), json!(columns));
                o.insert("until".into(), json!(if *until == WaitUntil::Equal { "==" } else { "!=" }));
                o.insert("rows".into(), Value::Array(rows.iter().cloned().map(Value::Object).collect()));
                o.insert("timeout".into(), json!(timeout_ms));
            }
            Op::Comment { comment } => {
                o.insert("comment".into(), json!(comment));
            }
        }
        Value::Object(o)
    }
}

/// The result of one successful operation: `uuid` for insert, `rows` for select, `count` for
/// update, mutate and delete; nothing for wait and comment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpResult {
    pub uuid: Option<Uuid>,
    pub rows: Option<Vec<Row>>,
    /// Rows matched by update/mutate/delete. A mutate that matches nothing still lets the
    /// transaction commit, so callers that need the row to exist must check this.
    pub count: Option<u64>,
}

impl OpResult {
    pub(crate) fn from_json(v: &Value) -> Result<OpResult, OvsdbError> {
        let o = v.as_object().ok_or_else(|| OvsdbError::decode("an operation result object", v))?;
        let uuid = o.get("uuid").map(as_uuid).transpose()?;
        let rows = match o.get("rows") {
            None => None,
            Some(Value::Array(rows)) => Some(
                rows.iter()
                    .map(|r| r.as_object().cloned().ok_or_else(|| OvsdbError::decode("a row object", r)))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(other) => return Err(OvsdbError::decode("an array of rows", other)),
        };
        let count = o
            .get("count")
            .map(|c| as_integer(c).and_then(|n| u64::try_from(n).map_err(|_| OvsdbError::decode("a count", c))))
            .transpose()?;
        Ok(OpResult { uuid, rows, count })
    }

    /// The rows of a select (empty for other operations).
    pub fn rows(&self) -> &[Row] {
        self.rows.as_deref().unwrap_or(&[])
    }
}

/// Require that operation `op_index` (an update, mutate or delete) matched exactly `expected`
/// rows, e.g. that `mutate Bridge ports insert` found its bridge.
pub fn check_count(
    db: &str,
    ops: &[Op],
    results: &[OpResult],
    op_index: usize,
    expected: u64,
) -> Result<(), OvsdbError> {
    let found = results.get(op_index).and_then(|r| r.count).unwrap_or(0);
    if found == expected {
        return Ok(());
    }
    Err(OvsdbError::CountMismatch {
        db: db.to_string(),
        op_index,
        table: ops.get(op_index).and_then(Op::table).unwrap_or("?").to_string(),
        expected,
        found,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ovsdb::datum::{named_uuid, row, set};

    #[test]
    fn ops_serialise_as_rfc_7047() {
        let ins = Op::insert_named("Bridge", "br", row([("name", json!("br0"))]));
        assert_eq!(ins.to_json(), json!({"op":"insert","table":"Bridge","row":{"name":"br0"},"uuid-name":"br"}));
        let sel = Op::select("Bridge", vec![Condition::eq("name", json!("br0"))], &["_uuid", "ports"]);
        assert_eq!(
            sel.to_json(),
            json!({"op":"select","table":"Bridge","where":[["name","==","br0"]],"columns":["_uuid","ports"]})
        );
        let m = Op::mutate("Open_vSwitch", vec![], vec![Mutation::insert("bridges", set([named_uuid("br")]))]);
        assert_eq!(
            m.to_json(),
            json!({"op":"mutate","table":"Open_vSwitch","where":[],
                   "mutations":[["bridges","insert",["set",[["named-uuid","br"]]]]]})
        );
        let w = Op::wait("Bridge", vec![], &["name"], WaitUntil::NotEqual, vec![], Duration::from_millis(20));
        assert_eq!(
            w.to_json(),
            json!({"op":"wait","table":"Bridge","where":[],"columns":["name"],"until":"!=","rows":[],"timeout":20})
        );
        assert_eq!(Op::comment("x").to_json(), json!({"op":"comment","comment":"x"}));
        assert_eq!(Op::delete("Port", vec![]).to_json(), json!({"op":"delete","table":"Port","where":[]}));
        let u = Op::update("Interface", vec![Condition::ne("name", json!("a"))], row([("mtu_request", json!(9000))]));
        assert_eq!(u.to_json()["where"], json!([["name", "!=", "a"]]));
        assert_eq!(Mutation::add("next_cfg", 1).to_json(), json!(["next_cfg", "+=", 1]));
    }

    #[test]
    fn results_parse_and_count_is_checked() {
        let u = "36b1a2c4-90b7-4d3f-a0b4-0123456789ab";
        let r = OpResult::from_json(&json!({"uuid": ["uuid", u]})).unwrap();
        assert_eq!(r.uuid.unwrap().as_str(), u);
        let r = OpResult::from_json(&json!({"rows": [{"name": "br0"}]})).unwrap();
        assert_eq!(r.rows().len(), 1);
        assert!(OpResult::from_json(&json!({"rows": [1]})).is_err());
        assert!(OpResult::from_json(&json!({"count": -1})).is_err());
        assert!(OpResult::from_json(&json!(null)).is_err());
        let ops = vec![Op::mutate("Bridge", vec![], vec![])];
        let zero = vec![OpResult::from_json(&json!({"count": 0})).unwrap()];
        let e = check_count("Open_vSwitch", &ops, &zero, 0, 1).unwrap_err();
        assert!(matches!(e, OvsdbError::CountMismatch { found: 0, expected: 1, .. }), "{e}");
        assert!(check_count("Open_vSwitch", &ops, &zero, 0, 0).is_ok());
    }
}
