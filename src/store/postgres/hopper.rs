//! PostgreSQL: the hopper's queries and the hot path's plans (see [`crate::store`]'s `hopper`).
//!
//! The hopper only reads: two nodes may both hand out the same contact, and the claim (a
//! conditional `UPDATE … WHERE status IN ('pending', 'scheduled') AND attempts = …`, in the
//! attempts area) lets exactly one of them dial it. Text comparisons run in the database's
//! collation, which need not be bytewise as SQLite's is: the zone lists are therefore put in
//! byte order here, and a zone is only ever compared for equality.

use super::PgEngine;
use crate::core::ContactId;
use crate::store::attempts::{DueContact, RECENT_HOURS, contact_fields, parse_status, recent_attempts};
use crate::store::hopper::{HopperKey, choose, in_order};
use crate::store::{StoreError, from_ms, to_ms};
use chrono::{DateTime, TimeDelta, Utc};
use sqlx::postgres::PgRow;
use sqlx::{Executor, PgConnection, Row, SqlSafeStr, Statement, TypeInfo};
use std::collections::{BTreeMap, HashSet};

/// Each distinct zone list that has a dialable contact (status `pending` or `scheduled`), with the
/// earliest `next_attempt_at` among them: a loose index scan of the partial index
/// `contacts_hopper`, one index seek per zone (PostgreSQL has no skip scan of its own).
const ZONES_SQL: &str = "WITH RECURSIVE z(tz) AS (
    SELECT (SELECT timezone FROM contacts WHERE campaign_id = $1 AND status IN ('pending', 'scheduled')
            ORDER BY timezone LIMIT 1)
    UNION ALL
    SELECT (SELECT timezone FROM contacts WHERE campaign_id = $1 AND status IN ('pending', 'scheduled')
            AND timezone > z.tz ORDER BY timezone LIMIT 1)
    FROM z WHERE z.tz IS NOT NULL
)
SELECT tz, (SELECT next_attempt_at FROM contacts WHERE campaign_id = $1 AND status IN ('pending', 'scheduled')
            AND timezone = z.tz ORDER BY next_attempt_at LIMIT 1) AS due
FROM z WHERE tz IS NOT NULL";

/// The next due contacts of one zone list, in hopper order, from the index.
const ZONE_BATCH_SQL: &str = "SELECT id, next_attempt_at, priority FROM contacts
    WHERE campaign_id = $1 AND timezone = $2 AND status IN ('pending', 'scheduled') AND next_attempt_at <= $3
    ORDER BY next_attempt_at, priority DESC, id LIMIT $4";

/// What the core needs of each chosen contact (`$3`, an array of ids): its DNC flag and the
/// attempt history (since `$1`) that the per-day limit, the minimum gap and the 72-hour hold read.
/// `string_agg` for SQLite's `group_concat` (the order does not matter: the list is sorted when
/// decoded); `EXISTS` is a boolean here.
const DETAILS_SQL: &str = "SELECT c.id, c.phone_e164, c.attempts, c.status, c.next_attempt_at, c.timezone,
    c.first_name, c.last_name, c.email, c.custom_fields, c.caller_id,
    EXISTS (SELECT 1 FROM dnc d WHERE d.phone_e164 = c.phone_e164 AND d.scope IN ('global', c.campaign_id)) AS dnc,
    (SELECT string_agg(a.started_at::text, ',') FROM attempts a
     WHERE a.contact_id = c.id AND a.started_at >= $1) AS recent,
    (SELECT MAX(a.started_at) FROM attempts a WHERE a.contact_id = c.id) AS last_attempt_at,
    (SELECT MAX(a.ended_at) FROM attempts a WHERE a.contact_id = c.id AND a.outcome = 'abandoned') AS last_abandoned_at
    FROM contacts c WHERE c.campaign_id = $2 AND c.status IN ('pending', 'scheduled') AND c.id = ANY($3::bigint[])";

/// Whether a campaign has a contact left to dial or on a call; one index seek each (the second
/// matches the predicate of the partial index `contacts_hopper`; PostgreSQL has no `INDEXED BY`).
const REMAINING_SQL: &str = "SELECT EXISTS (SELECT 1 FROM contacts WHERE campaign_id = $1 AND status = 'in_progress')
    OR EXISTS (SELECT 1 FROM contacts
               WHERE campaign_id = $1 AND status IN ('pending', 'scheduled') AND attempts < $2)";

/// The last DNC check before a dial, as `PgEngine::dnc_blocked` (the DNC area) runs it: its SQL
/// is inline there, so it is repeated here for its plan; keep the two the same.
const DNC_BLOCKED_SQL: &str = "SELECT phone_e164 FROM dnc WHERE scope IN ($1, $2) AND phone_e164 = ANY($3)";

impl PgEngine {
    pub(in crate::store) async fn hopper_zones(
        &self,
        campaign: &str,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        let rows = sqlx::query(ZONES_SQL).bind(campaign).fetch_all(self.pool()).await?;
        let mut zones = rows
            .iter()
            .map(|r| {
                Ok((
                    r.try_get("tz")?,
                    from_ms(r.try_get::<Option<i64>, _>("due")?.unwrap_or(0)),
                ))
            })
            .collect::<Result<Vec<(String, DateTime<Utc>)>, StoreError>>()?;
        // The scan walks the index in the database's collation; SQLite's order is bytewise.
        zones.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        Ok(zones)
    }

    pub(in crate::store) async fn hopper_batch(
        &self,
        campaign: &str,
        now: DateTime<Utc>,
        zones: &[String],
        limit: usize,
        skip: &HashSet<ContactId>,
    ) -> Result<Vec<DueContact>, StoreError> {
        if zones.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let per_zone = i64::try_from(limit.saturating_add(skip.len())).unwrap_or(i64::MAX);
        let mut keys: Vec<HopperKey> = Vec::new();
        let mut conn = self.pool().acquire().await?;
        for zone in zones {
            let rows = sqlx::query(ZONE_BATCH_SQL)
                .bind(campaign)
                .bind(zone)
                .bind(to_ms(now))
                .bind(per_zone)
                .fetch_all(&mut *conn)
                .await?;
            for r in &rows {
                let id: ContactId = r.try_get("id")?;
                if !skip.contains(&id) {
                    keys.push((
                        r.try_get("next_attempt_at")?,
                        std::cmp::Reverse(r.try_get("priority")?),
                        id,
                    ));
                }
            }
        }
        let (ids, order) = choose(keys, limit);
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(DETAILS_SQL)
            .bind(to_ms(now - TimeDelta::hours(RECENT_HOURS)))
            .bind(campaign)
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await?;
        let out = rows.iter().map(due_contact).collect::<Result<Vec<_>, _>>()?;
        Ok(in_order(out, &order))
    }

    pub(in crate::store) async fn has_remaining_contacts(
        &self,
        campaign: &str,
        max_attempts: u32,
    ) -> Result<bool, StoreError> {
        let any: bool = sqlx::query_scalar(REMAINING_SQL)
            .bind(campaign)
            .bind(i64::from(max_attempts))
            .fetch_one(self.pool())
            .await?;
        Ok(any)
    }

    /// `EXPLAIN` (nothing is executed) of each query with sample parameters: the hopper's own
    /// with values like the runner's, the other areas' with a sample value of each parameter's
    /// type as the server infers it.
    pub(in crate::store) async fn hot_query_plans(&self) -> Result<BTreeMap<&'static str, Vec<String>>, StoreError> {
        let mut plans = BTreeMap::new();
        let mut conn = self.pool().acquire().await?;
        let now = to_ms(Utc::now());
        let explain = |sql: &str| sqlx::AssertSqlSafe(format!("EXPLAIN {sql}"));
        macro_rules! plan {
            ($name:expr, $query:expr) => {{
                let rows = $query.fetch_all(&mut *conn).await?;
                plans.insert($name, plan_lines(&rows)?);
            }};
        }
        plan!("hopper_zones", sqlx::query(explain(ZONES_SQL)).bind("c"));
        plan!(
            "hopper_batch",
            sqlx::query(explain(ZONE_BATCH_SQL))
                .bind("c")
                .bind("America/New_York")
                .bind(now)
                .bind(100_i64)
        );
        plan!(
            "hopper_details",
            sqlx::query(explain(DETAILS_SQL))
                .bind(now - TimeDelta::hours(RECENT_HOURS).num_milliseconds())
                .bind("c")
                .bind(vec![1_i64, 2, 3])
        );
        for (name, sql) in super::attempts::HOT_WRITES {
            plans.insert(*name, explain_sample(&mut conn, sql).await?);
        }
        plans.insert("dnc_blocked", explain_sample(&mut conn, DNC_BLOCKED_SQL).await?);
        plan!(
            "has_remaining_contacts",
            sqlx::query(explain(REMAINING_SQL)).bind("c").bind(3_i64)
        );
        Ok(plans)
    }
}

/// The lines of an `EXPLAIN`'s result (one text column, `QUERY PLAN`).
fn plan_lines(rows: &[PgRow]) -> Result<Vec<String>, StoreError> {
    Ok(rows
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<Vec<_>, _>>()?)
}

/// `EXPLAIN` of `sql` with a sample value of each of its parameters: the statement is prepared
/// first to learn the parameter types the server infers, since a value bound with another type
/// would not compare (`text = bigint`). Sample values: `c` for text (the sample campaign), 1 for
/// integers, `true`, 1.0, and one-element arrays of those.
///
/// Errors: [`StoreError::Query`], with [`sqlx::Error::TypeNotFound`] for a parameter type that
/// has no sample value here.
async fn explain_sample(conn: &mut PgConnection, sql: &str) -> Result<Vec<String>, StoreError> {
    let text = format!("EXPLAIN {sql}");
    let stmt = (&mut *conn)
        .prepare(sqlx::AssertSqlSafe(text.clone()).into_sql_str())
        .await?;
    let types: Vec<String> = match stmt.parameters() {
        Some(sqlx::Either::Left(types)) => types.iter().map(|t| t.name().to_string()).collect(),
        _ => Vec::new(),
    };
    let mut q = sqlx::query(sqlx::AssertSqlSafe(text));
    for t in types {
        q = match t.as_str() {
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => q.bind("c"),
            "INT8" => q.bind(1_i64),
            "INT4" => q.bind(1_i32),
            "INT2" => q.bind(1_i16),
            "BOOL" => q.bind(true),
            "FLOAT8" => q.bind(1.0_f64),
            "FLOAT4" => q.bind(1.0_f32),
            "TEXT[]" | "VARCHAR[]" => q.bind(vec!["c"]),
            "INT8[]" => q.bind(vec![1_i64]),
            "INT4[]" => q.bind(vec![1_i32]),
            _ => return Err(sqlx::Error::TypeNotFound { type_name: t }.into()),
        };
    }
    let rows = q.fetch_all(&mut *conn).await?;
    plan_lines(&rows)
}

/// A [`DueContact`] from a row of [`DETAILS_SQL`]. Integers are BIGINT here: the attempt count is
/// checked into a `u32`.
fn due_contact(r: &PgRow) -> Result<DueContact, StoreError> {
    let status: String = r.try_get("status")?;
    let custom: String = r.try_get("custom_fields")?;
    let fields = contact_fields(
        &custom,
        [
            ("first_name", r.try_get("first_name")?),
            ("last_name", r.try_get("last_name")?),
            ("email", r.try_get("email")?),
        ],
    )?;
    let attempts: i64 = r.try_get("attempts")?;
    Ok(DueContact {
        id: r.try_get("id")?,
        phone_e164: r.try_get("phone_e164")?,
        attempts: u32::try_from(attempts)
            .map_err(|_| StoreError::Corrupt(format!("contacts.attempts out of range: {attempts}")))?,
        status: parse_status(&status)?,
        next_attempt_at: from_ms(r.try_get("next_attempt_at")?),
        timezone: r.try_get("timezone")?,
        dnc: r.try_get::<bool, _>("dnc")?,
        recent_attempts: recent_attempts(r.try_get::<Option<String>, _>("recent")?.as_deref()),
        last_attempt_at: r.try_get::<Option<i64>, _>("last_attempt_at")?.map(from_ms),
        last_abandoned_at: r.try_get::<Option<i64>, _>("last_abandoned_at")?.map(from_ms),
        fields,
        caller_id: r.try_get("caller_id")?,
    })
}
