-- Independent sinks: order keys are per call and per sink. The analyze job no longer shares its
-- call's webhook key (`call:<id>`): it waits on nothing but the call's end, so a webhook receiver
-- that is down cannot hold the analysis, the CRM sync or the follow-ups behind it. Jobs already
-- written keep every other key (`fu:<id>` jobs of an older run stay in one order per call).

UPDATE outbox SET order_key = 'analyze:' || substr(order_key, length('call:') + 1)
 WHERE kind = 'analyze' AND order_key LIKE 'call:%';
