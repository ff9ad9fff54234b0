package sql

// Views are the plain views BI tools read (SPEC §6 and the catalogue of
// §6.1), in the order SPEC lists them. churn_monthly_totals, a view the
// others read, is not one of them. TestViewsListed checks the list against
// the views the migrations create.
var Views = []string{
	"funnel_daily", "bounce_daily", "churn_monthly", "revenue_daily",
	"traffic_daily", "visitor_conversion_daily", "pages_daily", "satisfaction_monthly",
	"trial_conversion_monthly", "retention_monthly", "clv_cohort_monthly",
}
