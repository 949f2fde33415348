//! SQLite: the hopper's queries and the hot path's plans (see [`crate::store`]'s `hopper`).

use super::SqliteEngine;
use crate::core::ContactId;
use crate::store::attempts::{DueContact, RECENT_HOURS};
use crate::store::hopper::{HopperKey, choose, in_order};
use crate::store::{StoreError, from_ms, to_ms};
use chrono::{DateTime, TimeDelta, Utc};
use sqlx::{QueryBuilder, Row, Sqlite};
use std::collections::{BTreeMap, HashSet};

/// Each distinct zone list that has a dialable contact (status `pending` or `scheduled`), with the
/// earliest `next_attempt_at` among them: a loose index scan, one index seek per zone.
const ZONES_SQL: &str = "WITH RECURSIVE z(tz) AS (
    SELECT (SELECT timezone FROM contacts WHERE campaign_id = ?1 AND status IN ('pending', 'scheduled')
            ORDER BY timezone LIMIT 1)
    UNION ALL
    SELECT (SELECT timezone FROM contacts WHERE campaign_id = ?1 AND status IN ('pending', 'scheduled')
            AND timezone > z.tz ORDER BY timezone LIMIT 1)
    FROM z WHERE z.tz IS NOT NULL
)
SELECT tz, (SELECT next_attempt_at FROM contacts WHERE campaign_id = ?1 AND status IN ('pending', 'scheduled')
            AND timezone = z.tz ORDER BY next_attempt_at LIMIT 1) AS due
FROM z WHERE tz IS NOT NULL";

/// The next due contacts of one zone list, in hopper order, from the covering index.
const ZONE_BATCH_SQL: &str = "SELECT id, next_attempt_at, priority FROM contacts
    WHERE campaign_id = ? AND timezone = ? AND status IN ('pending', 'scheduled') AND next_attempt_at <= ?
    ORDER BY next_attempt_at, priority DESC, id LIMIT ?";

/// What the core needs of each chosen contact: its DNC flag and the attempt history that the
/// per-day limit, the minimum gap and the 72-hour hold read. In three parts around its two binds
/// (the recent-attempts bound, the campaign), then the ids and `)`.
const DETAILS_HEAD: &str = "SELECT c.id, c.phone_e164, c.attempts, c.status, c.next_attempt_at, c.timezone,
    c.first_name, c.last_name, c.email, c.custom_fields, c.caller_id,
    EXISTS (SELECT 1 FROM dnc d WHERE d.phone_e164 = c.phone_e164 AND d.scope IN ('global', c.campaign_id)) AS dnc,
    (SELECT group_concat(a.started_at) FROM attempts a WHERE a.contact_id = c.id AND a.started_at >= ";
const DETAILS_MID: &str = ") AS recent,
    (SELECT MAX(a.started_at) FROM attempts a WHERE a.contact_id = c.id) AS last_attempt_at,
    (SELECT MAX(a.ended_at) FROM attempts a WHERE a.contact_id = c.id AND a.outcome = 'abandoned') AS last_abandoned_at
    FROM contacts c WHERE c.campaign_id = ";
const DETAILS_TAIL: &str = " AND c.status IN ('pending', 'scheduled') AND c.id IN (";

/// Whether a campaign has a contact left to dial or on a call; one index seek each.
const REMAINING_SQL: &str = "SELECT EXISTS (SELECT 1 FROM contacts WHERE campaign_id = ?1 AND status = 'in_progress')
    OR EXISTS (SELECT 1 FROM contacts INDEXED BY contacts_hopper
               WHERE campaign_id = ?1 AND status IN ('pending', 'scheduled') AND attempts < ?2)";

/// Most ids in one `IN (…)` list (SQLite allows 32,766 parameters).
const IDS_CHUNK: usize = 500;

impl SqliteEngine {
    pub(in crate::store) async fn hopper_zones(
        &self,
        campaign: &str,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        let rows = sqlx::query(ZONES_SQL).bind(campaign).fetch_all(self.reader()).await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("tz")?,
                    from_ms(r.try_get::<Option<i64>, _>("due")?.unwrap_or(0)),
                ))
            })
            .collect()
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
        let per_zone = i64::try_from(limit + skip.len()).unwrap_or(i64::MAX);
        let mut keys: Vec<HopperKey> = Vec::new();
        let mut conn = self.reader().acquire().await?;
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
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_CHUNK) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new("");
            push_details(&mut q, campaign, now, chunk);
            for r in q.build().fetch_all(&mut *conn).await? {
                out.push(super::attempts::due_contact(&r)?);
            }
        }
        Ok(in_order(out, &order))
    }

    pub(in crate::store) async fn has_remaining_contacts(
        &self,
        campaign: &str,
        max_attempts: u32,
    ) -> Result<bool, StoreError> {
        let any: bool = sqlx::query_scalar(REMAINING_SQL)
            .bind(campaign)
            .bind(max_attempts)
            .fetch_one(self.reader())
            .await?;
        Ok(any)
    }

    pub(in crate::store) async fn hot_query_plans(&self) -> Result<BTreeMap<&'static str, Vec<String>>, StoreError> {
        let mut plans = BTreeMap::new();
        let mut conn = self.reader().acquire().await?;
        let now = to_ms(Utc::now());
        let explain = |sql: &str| format!("EXPLAIN QUERY PLAN {sql}");
        macro_rules! plan {
            ($name:expr, $query:expr) => {{
                let rows = $query.fetch_all(&mut *conn).await?;
                let lines = rows
                    .iter()
                    .map(|r| r.try_get::<String, _>("detail"))
                    .collect::<Result<Vec<_>, _>>()?;
                plans.insert($name, lines);
            }};
        }
        let zones_sql = explain(ZONES_SQL);
        plan!("hopper_zones", sqlx::query(sqlx::AssertSqlSafe(zones_sql)).bind("c"));
        let batch_sql = explain(ZONE_BATCH_SQL);
        plan!(
            "hopper_batch",
            sqlx::query(sqlx::AssertSqlSafe(batch_sql))
                .bind("c")
                .bind("America/New_York")
                .bind(now)
                .bind(100)
        );
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new("EXPLAIN QUERY PLAN ");
        push_details(&mut q, "c", Utc::now(), &[1, 2, 3]);
        plan!("hopper_details", q.build());
        for (name, sql) in super::attempts::HOT_WRITES {
            let n = sql.matches('?').count();
            let text = explain(sql);
            let mut query = sqlx::query(sqlx::AssertSqlSafe(text));
            for _ in 0..n {
                query = query.bind(1_i64);
            }
            plan!(*name, query);
        }
        let phone = ["+12125550100".to_string()];
        let dnc_sql = explain(super::dnc::dnc_blocked_query("c", &phone).sql().as_str());
        plan!(
            "dnc_blocked",
            sqlx::query(sqlx::AssertSqlSafe(dnc_sql))
                .bind("global")
                .bind("c")
                .bind(&phone[0])
        );
        plan!(
            "has_remaining_contacts",
            sqlx::query(sqlx::AssertSqlSafe(explain(REMAINING_SQL)))
                .bind("c")
                .bind(3)
        );
        Ok(plans)
    }
}

/// Appends the details query for `ids` to `q`.
fn push_details(q: &mut QueryBuilder<Sqlite>, campaign: &str, now: DateTime<Utc>, ids: &[ContactId]) {
    q.push(DETAILS_HEAD)
        .push_bind(to_ms(now - TimeDelta::hours(RECENT_HOURS)))
        .push(DETAILS_MID)
        .push_bind(campaign.to_string())
        .push(DETAILS_TAIL);
    let mut sep = q.separated(", ");
    for id in ids {
        sep.push_bind(*id);
    }
    q.push(")");
}
