/* test-hours.c - business hours: parsing, open/closed, next opening and
 * response targets counted in open time, across zones and DST changes. */
#include "hours.h"

#include <stdio.h>

static TmHours *
hours_or_die (const char *timezone, const char *days, const char *open, const char *holidays)
{
  g_autoptr (GError) error = NULL;
  TmHours *hours = tm_hours_new ("test", timezone, days, open, holidays, &error);
  g_assert_no_error (error);
  g_assert_nonnull (hours);
  return hours;
}

/* Unix seconds of local wall-clock "YYYY-MM-DD HH:MM[:SS]" in ZONE, computed
 * by GLib independently of the module under test. */
static gint64
local_time (const char *zone_name, const char *text)
{
  int year, month, day, hour, minute, second = 0;
  int fields = sscanf (text, "%d-%d-%d %d:%d:%d", &year, &month, &day, &hour, &minute, &second);
  g_assert_cmpint (fields, >=, 5);
  g_autoptr (GTimeZone) zone = g_time_zone_new_identifier (zone_name);
  g_assert_nonnull (zone);
  g_autoptr (GDateTime) moment = g_date_time_new (zone, year, month, day, hour, minute, second);
  g_assert_nonnull (moment);
  return g_date_time_to_unix (moment);
}

static void
assert_local (const TmHours *hours, gint64 when, const char *want)
{
  g_autofree char *got = tm_hours_format_local (hours, when);
  g_assert_cmpstr (got, ==, want);
}

static void
test_defaults (void)
{
  TmHours *hours = hours_or_die (NULL, NULL, NULL, NULL);
  g_assert_cmpstr (tm_hours_name (hours), ==, "test");
  g_assert_cmpstr (tm_hours_timezone (hours), ==, "UTC");
  g_assert_cmpstr (tm_hours_open_text (hours), ==, "09:00-17:00");
  /* 2026-11-27 is a Friday, 2026-11-28 a Saturday. */
  g_assert_true (tm_hours_is_open (hours, local_time ("UTC", "2026-11-27 09:00")));
  g_assert_false (tm_hours_is_open (hours, local_time ("UTC", "2026-11-28 12:00")));
  assert_local (hours, tm_hours_next_open (hours, local_time ("UTC", "2026-11-28 12:00")),
                "2026-11-30 09:00");
  tm_hours_free (&hours);
  g_assert_null (hours);
  tm_hours_free (&hours);
  tm_hours_free (NULL);
}

static void
test_riyadh_sunday_to_thursday (void)
{
  TmHours *hours = hours_or_die ("Asia/Riyadh", "sun-thu", "09:00-17:00", NULL);
  g_assert_cmpstr (tm_hours_timezone (hours), ==, "Asia/Riyadh");
  const char *zone = "Asia/Riyadh";
  /* Thursday 2026-11-26: open in the afternoon, closed in the evening. */
  g_assert_true (tm_hours_is_open (hours, local_time (zone, "2026-11-26 16:59:59")));
  g_assert_false (tm_hours_is_open (hours, local_time (zone, "2026-11-26 17:00")));
  g_assert_false (tm_hours_is_open (hours, local_time (zone, "2026-11-27 11:00")));  /* Friday */
  g_assert_false (tm_hours_is_open (hours, local_time (zone, "2026-11-28 11:00")));  /* Saturday */
  g_assert_false (tm_hours_is_open (hours, local_time (zone, "2026-11-29 08:59:59")));
  g_assert_true (tm_hours_is_open (hours, local_time (zone, "2026-11-29 09:00")));   /* Sunday */

  /* A mail on Thursday evening: the desk opens on Sunday at 09:00 Riyadh
   * time, which is 06:00 UTC (1795932000, from date(1)). */
  gint64 thursday_evening = local_time (zone, "2026-11-26 19:45");
  gint64 next = tm_hours_next_open (hours, thursday_evening);
  g_assert_cmpint (next, ==, G_GINT64_CONSTANT (1795932000));
  assert_local (hours, next, "2026-11-29 09:00");

  /* While open, the next opening is now. */
  gint64 sunday_noon = local_time (zone, "2026-11-29 12:00");
  g_assert_cmpint (tm_hours_next_open (hours, sunday_noon), ==, sunday_noon);
  tm_hours_free (&hours);
}

static void
test_tehran_saturday_to_wednesday (void)
{
  TmHours *hours = hours_or_die ("Asia/Tehran", "sat-wed", "09:00-17:00", NULL);
  const char *zone = "Asia/Tehran";
  /* The range wraps the week end: sat, sun, mon, tue, wed. */
  const struct { const char *when; gboolean open; } cases[] = {
    { "2026-11-25 10:00", TRUE },   /* Wednesday */
    { "2026-11-26 10:00", FALSE },  /* Thursday */
    { "2026-11-27 10:00", FALSE },  /* Friday */
    { "2026-11-28 10:00", TRUE },   /* Saturday */
    { "2026-11-29 10:00", TRUE },   /* Sunday */
    { "2026-11-30 10:00", TRUE },   /* Monday */
    { "2026-12-01 10:00", TRUE },   /* Tuesday */
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    if (tm_hours_is_open (hours, local_time (zone, cases[i].when)) != cases[i].open)
      g_error ("Tehran %s: want %s", cases[i].when, cases[i].open ? "open" : "closed");

  /* Wednesday evening -> Saturday 09:00 +03:30, 1795843800 from date(1). */
  gint64 next = tm_hours_next_open (hours, local_time (zone, "2026-11-25 18:00"));
  g_assert_cmpint (next, ==, G_GINT64_CONSTANT (1795843800));
  assert_local (hours, next, "2026-11-28 09:00");
  tm_hours_free (&hours);
}

static void
test_day_names (void)
{
  const struct { const char *days; const char *working; } cases[] = {
    /* Sunday first, as in working[]: S M T W T F S */
    { "sun-thu", "YYYYYNN" },
    { "SUN-Thu", "YYYYYNN" },
    { "sat-wed", "YYYYNNY" },
    { "fri-sat", "NNNNNYY" },
    { "sat-sun", "YNNNNNY" },
    { "mon", "NYNNNNN" },
    { "mon;wed; fri;", "NYNYNYN" },
    { "monday-friday", "NYYYYYN" },
    { " tue - tue ", "NNYNNNN" },
    { "sun-sat", "YYYYYYY" },
    { "wed-tue", "YYYYYYY" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      TmHours *hours = hours_or_die ("UTC", cases[i].days, "00:00-24:00", NULL);
      /* 2026-11-29 is a Sunday. */
      for (int day = 0; day < 7; day++)
        {
          gint64 when = local_time ("UTC", "2026-11-29 12:00") + day * 86400;
          gboolean want = cases[i].working[day] == 'Y';
          if (tm_hours_is_open (hours, when) != want)
            g_error ("days \"%s\", weekday %d: want %s", cases[i].days, day,
                     want ? "open" : "closed");
        }
      tm_hours_free (&hours);
    }
}

static void
test_holiday_range_skipped (void)
{
  const char *zone = "Asia/Riyadh";
  TmHours *hours = hours_or_die (zone, "sun-thu", "09:00-17:00",
                                 "2026-12-25; 2026-11-29..2026-12-01");
  /* Sunday to Tuesday are a holiday: Thursday evening waits for Wednesday. */
  g_assert_false (tm_hours_is_open (hours, local_time (zone, "2026-11-30 10:00")));
  assert_local (hours, tm_hours_next_open (hours, local_time (zone, "2026-11-26 19:00")),
                "2026-12-02 09:00");
  /* A single date: Friday 2026-12-25 is no working day anyway; Thursday
   * 2026-12-24 is open, and the next day after it is Sunday. */
  g_assert_true (tm_hours_is_open (hours, local_time (zone, "2026-12-24 10:00")));
  assert_local (hours, tm_hours_next_open (hours, local_time (zone, "2026-12-24 17:00")),
                "2026-12-27 09:00");
  tm_hours_free (&hours);

  hours = hours_or_die (zone, "sun-thu", "09:00-17:00", "2026-12-27");
  assert_local (hours, tm_hours_next_open (hours, local_time (zone, "2026-12-24 17:00")),
                "2026-12-28 09:00");
  tm_hours_free (&hours);
}

static void
test_end_at_midnight (void)
{
  TmHours *hours = hours_or_die ("UTC", "mon-fri", "18:00-24:00", NULL);
  g_assert_cmpstr (tm_hours_open_text (hours), ==, "18:00-24:00");
  /* Friday 2026-11-27 until the last second, not Saturday midnight. */
  g_assert_true (tm_hours_is_open (hours, local_time ("UTC", "2026-11-27 23:59:59")));
  g_assert_false (tm_hours_is_open (hours, local_time ("UTC", "2026-11-28 00:00")));
  g_assert_false (tm_hours_is_open (hours, local_time ("UTC", "2026-11-30 00:00")));
  assert_local (hours, tm_hours_next_open (hours, local_time ("UTC", "2026-11-27 23:59:59") + 1),
                "2026-11-30 18:00");
  tm_hours_free (&hours);

  /* Around the clock on two days: the time is continuous across midnight. */
  hours = hours_or_die ("UTC", "mon;tue", "00:00-24:00", NULL);
  gint64 monday_late = local_time ("UTC", "2026-11-30 23:00");
  g_assert_true (tm_hours_is_open (hours, monday_late + 3600));
  assert_local (hours, tm_hours_add_open_time (hours, monday_late, 2 * 3600), "2026-12-01 01:00");
  /* Tuesday's 24:00 is closing time; two hours from Tuesday 23:00 run on
   * into the next Monday. */
  assert_local (hours, tm_hours_add_open_time (hours, monday_late + 86400, 3600),
                "2026-12-02 00:00");
  assert_local (hours, tm_hours_add_open_time (hours, monday_late + 86400, 2 * 3600),
                "2026-12-07 01:00");
  tm_hours_free (&hours);
}

static void
test_two_intervals (void)
{
  /* Given out of order on purpose: they are sorted. */
  TmHours *hours = hours_or_die ("Asia/Riyadh", "sun-thu", "13:00-17:00;08:00-12:00", NULL);
  g_assert_cmpstr (tm_hours_open_text (hours), ==, "08:00-12:00, 13:00-17:00");
  const char *zone = "Asia/Riyadh";
  g_assert_true (tm_hours_is_open (hours, local_time (zone, "2026-11-29 11:59:59")));
  g_assert_false (tm_hours_is_open (hours, local_time (zone, "2026-11-29 12:30")));
  assert_local (hours, tm_hours_next_open (hours, local_time (zone, "2026-11-29 12:30")),
                "2026-11-29 13:00");
  /* 10:00 + 3 h of open time: 2 h before lunch, 1 h after. */
  assert_local (hours, tm_hours_add_open_time (hours, local_time (zone, "2026-11-29 10:00"), 3 * 3600),
                "2026-11-29 14:00");
  /* Exactly the morning's remaining time ends at 12:00, not at 13:00. */
  assert_local (hours, tm_hours_add_open_time (hours, local_time (zone, "2026-11-29 10:00"), 2 * 3600),
                "2026-11-29 12:00");
  tm_hours_free (&hours);

  /* Intervals that touch are allowed and behave as one. */
  hours = hours_or_die ("UTC", "mon-fri", "09:00-12:00;12:00-17:00", NULL);
  g_assert_true (tm_hours_is_open (hours, local_time ("UTC", "2026-11-30 12:00")));
  tm_hours_free (&hours);
}

static void
test_daylight_saving_berlin (void)
{
  const char *zone = "Europe/Berlin";
  TmHours *hours = hours_or_die (zone, "sun-sat", "09:00-17:00", NULL);
  /* Sunday 2026-03-29 is the last Sunday of March: at 02:00 CET the clocks
   * jump to 03:00 CEST. Opening is still 09:00 on the wall clock, which is
   * now 07:00 UTC (1774767600 from date(1)); the day before it was 08:00 UTC. */
  gint64 sunday_early = local_time (zone, "2026-03-29 05:00");
  gint64 next = tm_hours_next_open (hours, sunday_early);
  g_assert_cmpint (next, ==, G_GINT64_CONSTANT (1774767600));
  assert_local (hours, next, "2026-03-29 09:00");
  gint64 saturday_open = tm_hours_next_open (hours, local_time (zone, "2026-03-28 05:00"));
  g_assert_cmpint (next - saturday_open, ==, 23 * 3600);
  /* From Saturday 16:00, two hours of open time end Sunday 10:00 local. */
  assert_local (hours, tm_hours_add_open_time (hours, local_time (zone, "2026-03-28 16:00"), 7200),
                "2026-03-29 10:00");
  tm_hours_free (&hours);

  /* An interval spanning the jump is an hour short in spring and an hour
   * long in autumn (last Sunday of October, 2026-10-25). */
  hours = hours_or_die (zone, "sun", "01:00-04:00", NULL);
  gint64 spring = local_time (zone, "2026-03-29 01:00");
  g_assert_true (tm_hours_is_open (hours, spring + 2 * 3600 - 1));
  assert_local (hours, spring + 2 * 3600, "2026-03-29 04:00");
  g_assert_false (tm_hours_is_open (hours, spring + 2 * 3600));
  gint64 autumn = local_time (zone, "2026-10-25 01:00");
  g_assert_true (tm_hours_is_open (hours, autumn + 4 * 3600 - 1));
  g_assert_false (tm_hours_is_open (hours, autumn + 4 * 3600));
  assert_local (hours, tm_hours_add_open_time (hours, autumn, 4 * 3600), "2026-10-25 04:00");
  tm_hours_free (&hours);

  /* An interval wholly inside the spring gap never happens that day. */
  hours = hours_or_die (zone, "sun", "02:00-02:30;09:00-10:00", NULL);
  gint64 midnight = local_time (zone, "2026-03-29 00:00");
  assert_local (hours, tm_hours_next_open (hours, midnight), "2026-03-29 09:00");
  g_assert_false (tm_hours_is_open (hours, local_time (zone, "2026-03-29 03:00")));
  assert_local (hours, tm_hours_add_open_time (hours, midnight, 1800), "2026-03-29 09:30");
  /* A week later the same interval is there. */
  assert_local (hours, tm_hours_next_open (hours, midnight + 7 * 86400), "2026-04-05 02:00");
  tm_hours_free (&hours);
}

static void
test_add_open_time_over_weekend (void)
{
  const char *zone = "Asia/Riyadh";
  TmHours *hours = hours_or_die (zone, "sun-thu", "09:00-17:00", NULL);
  /* Thursday 16:00 + 2 h: one hour on Thursday, one on Sunday. */
  assert_local (hours, tm_hours_add_open_time (hours, local_time (zone, "2026-11-26 16:00"), 7200),
                "2026-11-29 10:00");
  /* Started on Friday: a whole working day ends at Sunday's closing time. */
  assert_local (hours, tm_hours_add_open_time (hours, local_time (zone, "2026-11-27 12:00"), 8 * 3600),
                "2026-11-29 17:00");
  /* One second more runs into Monday. */
  assert_local (hours, tm_hours_add_open_time (hours, local_time (zone, "2026-11-27 12:00"),
                                               8 * 3600 + 60),
                "2026-11-30 09:01");
  /* Zero seconds is the next opening; inside hours it is the start itself. */
  assert_local (hours, tm_hours_add_open_time (hours, local_time (zone, "2026-11-27 12:00"), 0),
                "2026-11-29 09:00");
  gint64 open_now = local_time (zone, "2026-11-29 10:30");
  g_assert_cmpint (tm_hours_add_open_time (hours, open_now, 0), ==, open_now);
  /* A week of open time (5 days x 8 h) from Sunday 09:00 is Thursday 17:00. */
  assert_local (hours, tm_hours_add_open_time (hours, local_time (zone, "2026-11-29 09:00"),
                                               40 * 3600),
                "2026-12-03 17:00");
  tm_hours_free (&hours);
}

static void
test_search_window (void)
{
  /* Closed for three years: nothing within 400 days. */
  TmHours *hours = hours_or_die ("UTC", "mon-fri", NULL, "2026-01-01..2028-12-31");
  gint64 now = local_time ("UTC", "2026-06-01 10:00");
  g_assert_false (tm_hours_is_open (hours, now));
  g_assert_cmpint (tm_hours_next_open (hours, now), ==, 0);
  g_assert_cmpint (tm_hours_add_open_time (hours, now, 60), ==, 0);
  tm_hours_free (&hours);

  /* Closed for 390 days: still found. */
  hours = hours_or_die ("UTC", "sun-sat", NULL, "2026-01-01..2027-01-25");
  assert_local (hours, tm_hours_next_open (hours, local_time ("UTC", "2026-01-01 00:00")),
                "2027-01-26 09:00");
  /* More open time than the window holds. */
  g_assert_cmpint (tm_hours_add_open_time (hours, local_time ("UTC", "2027-01-26 00:00"),
                                           G_GINT64_CONSTANT (410) * 8 * 3600),
                   ==, 0);
  tm_hours_free (&hours);

  /* Times GDateTime cannot represent count as closed, without crashing. */
  hours = hours_or_die ("UTC", "sun-sat", "00:00-24:00", NULL);
  g_assert_false (tm_hours_is_open (hours, G_MAXINT64));
  g_assert_cmpint (tm_hours_next_open (hours, G_MININT64), ==, 0);
  g_assert_cmpint (tm_hours_add_open_time (hours, G_MAXINT64, 10), ==, 0);
  assert_local (hours, G_MAXINT64, "@9223372036854775807");
  /* Near the end of year 9999 the walk runs out of representable days. */
  gint64 near_end = local_time ("UTC", "9999-12-30 12:00");
  g_assert_true (tm_hours_is_open (hours, near_end));
  g_assert_cmpint (tm_hours_add_open_time (hours, near_end, 2 * 86400), ==, 0);
  tm_hours_free (&hours);
}

static void
test_invalid (void)
{
  const struct {
    const char *timezone, *days, *open, *holidays;
    const char *want;            /* the whole message must start with this */
  } cases[] = {
    { "Mars/Olympus_Mons", NULL, NULL, NULL, "timezone: \"Mars/Olympus_Mons\" is not a known time zone" },
    { "", NULL, NULL, NULL, "timezone: the value is empty" },
    { "  ", NULL, NULL, NULL, "timezone: the value is empty" },
    { "/etc/localtime", NULL, NULL, NULL, "timezone: \"/etc/localtime\" is not a time zone name" },
    { "../../etc/passwd", NULL, NULL, NULL, "timezone: \"../../etc/passwd\" is not a time zone name" },
    { NULL, "sun-thx", NULL, NULL, "days: \"sun-thx\" is not a day or range such as sun-thu" },
    { NULL, "sunday-", NULL, NULL, "days: \"sunday-\" is not a day or range" },
    { NULL, "mon-tue-wed", NULL, NULL, "days: \"mon-tue-wed\" is not a day or range" },
    { NULL, "su", NULL, NULL, "days: \"su\" is not a day or range" },
    { NULL, "mon,tue", NULL, NULL, "days: \"mon,tue\" is not a day or range" },
    { NULL, "", NULL, NULL, "days: the value is empty" },
    { NULL, " ; ;", NULL, NULL, "days: the value is empty" },
    { NULL, NULL, "17:00-09:00", NULL, "open: \"17:00-09:00\" does not start before it ends" },
    { NULL, NULL, "09:00-09:00", NULL, "open: \"09:00-09:00\" does not start before it ends" },
    { NULL, NULL, "09:00-13:00;12:00-17:00", NULL, "open: intervals 09:00-13:00 and 12:00-17:00 overlap" },
    { NULL, NULL, "08:00-18:00;10:00-11:00", NULL, "open: intervals 08:00-18:00 and 10:00-11:00 overlap" },
    { NULL, NULL, "09:00-25:00", NULL, "open: \"09:00-25:00\" is not an interval" },
    { NULL, NULL, "09:00-24:01", NULL, "open: \"09:00-24:01\" is not an interval" },
    { NULL, NULL, "24:00-24:00", NULL, "open: \"24:00-24:00\" starts at 24:00" },
    { NULL, NULL, "09:60-10:00", NULL, "open: \"09:60-10:00\" is not an interval" },
    { NULL, NULL, "9-17", NULL, "open: \"9-17\" is not an interval" },
    { NULL, NULL, "09:00", NULL, "open: \"09:00\" is not an interval" },
    { NULL, NULL, "009:00-17:00", NULL, "open: \"009:00-17:00\" is not an interval" },
    { NULL, NULL, "-09:00-17:00", NULL, "open: \"-09:00-17:00\" is not an interval" },
    { NULL, NULL, "", NULL, "open: the value is empty" },
    { NULL, NULL, NULL, "2026-02-30", "holidays: \"2026-02-30\" is not a date" },
    { NULL, NULL, NULL, "2026-13-01", "holidays: \"2026-13-01\" is not a date" },
    { NULL, NULL, NULL, "2026-1-5", "holidays: \"2026-1-5\" is not a date" },
    { NULL, NULL, NULL, "0000-01-01", "holidays: \"0000-01-01\" is not a date" },
    { NULL, NULL, NULL, "2027-02-29", "holidays: \"2027-02-29\" is not a date" },
    { NULL, NULL, NULL, "2026-12-25..", "holidays: \"2026-12-25..\" is not a date" },
    { NULL, NULL, NULL, "2026-12-25..2026-12-31..2027-01-01", "holidays: \"2026-12-25..2026-12-31..2027-01-01\" is not a date" },
    { NULL, NULL, NULL, "2027-04-02..2027-03-30", "holidays: range \"2027-04-02..2027-03-30\" ends before it starts" },
    { NULL, NULL, NULL, "", "holidays: the value is empty" },
    /* The first bad key is the one reported. */
    { "Nowhere/Nothing", "sun-thx", "25:00-26:00", "2026-02-30", "timezone: " },
    { "UTC", "sun-thx", "25:00-26:00", "2026-02-30", "days: " },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = NULL;
      TmHours *hours = tm_hours_new ("bad", cases[i].timezone, cases[i].days, cases[i].open,
                                     cases[i].holidays, &error);
      g_assert_null (hours);
      g_assert_error (error, TM_HOURS_ERROR, TM_HOURS_ERROR_INVALID);
      if (!g_str_has_prefix (error->message, cases[i].want))
        g_error ("case %" G_GSIZE_FORMAT ": got \"%s\", want it to start \"%s\"", i,
                 error->message, cases[i].want);
    }
  /* Passing no GError is fine too. */
  g_assert_null (tm_hours_new ("bad", "Nowhere/Nothing", NULL, NULL, NULL, NULL));
}

static void
test_valid_variants (void)
{
  const struct { const char *timezone, *days, *open, *holidays, *open_text; } cases[] = {
    { "UTC", "mon-fri", "9:00-17:30", NULL, "09:00-17:30" },
    { " Asia/Riyadh ", "sun-thu;", " 08:00 - 12:00 ; 13:00-16:00 ;", "2027-03-30 .. 2027-04-02;", "08:00-12:00, 13:00-16:00" },
    { "Europe/Berlin", "mon-fri", "00:00-24:00", "2028-02-29;2026-12-24..2026-12-24", "00:00-24:00" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      TmHours *hours = hours_or_die (cases[i].timezone, cases[i].days, cases[i].open,
                                     cases[i].holidays);
      g_assert_cmpstr (tm_hours_open_text (hours), ==, cases[i].open_text);
      tm_hours_free (&hours);
    }
  TmHours *hours = hours_or_die (" Asia/Riyadh ", NULL, NULL, NULL);
  g_assert_cmpstr (tm_hours_timezone (hours), ==, "Asia/Riyadh");
  tm_hours_free (&hours);
}

typedef struct {
  const TmHours *hours;
  gint64 thursday_evening;
  gint64 want;
} ThreadCase;

static gpointer
query_many_times (gpointer data)
{
  const ThreadCase *shared = data;
  for (int i = 0; i < 200; i++)
    if (tm_hours_next_open (shared->hours, shared->thursday_evening) != shared->want)
      return GINT_TO_POINTER (1);
  return NULL;
}

static void
test_shared_between_threads (void)
{
  TmHours *hours = hours_or_die ("Asia/Riyadh", "sun-thu", NULL, "2026-11-29");
  ThreadCase shared = { hours, local_time ("Asia/Riyadh", "2026-11-26 19:00"), 0 };
  shared.want = local_time ("Asia/Riyadh", "2026-11-30 09:00");
  GThread *threads[4];
  for (gsize i = 0; i < G_N_ELEMENTS (threads); i++)
    threads[i] = g_thread_new ("hours", query_many_times, &shared);
  for (gsize i = 0; i < G_N_ELEMENTS (threads); i++)
    g_assert_null (g_thread_join (threads[i]));
  tm_hours_free (&hours);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/hours/defaults", test_defaults);
  g_test_add_func ("/hours/riyadh/sunday-to-thursday", test_riyadh_sunday_to_thursday);
  g_test_add_func ("/hours/tehran/saturday-to-wednesday", test_tehran_saturday_to_wednesday);
  g_test_add_func ("/hours/days/names-ranges-and-wrapping", test_day_names);
  g_test_add_func ("/hours/holidays/range-is-skipped", test_holiday_range_skipped);
  g_test_add_func ("/hours/open/ends-at-24-00", test_end_at_midnight);
  g_test_add_func ("/hours/open/two-intervals", test_two_intervals);
  g_test_add_func ("/hours/dst/berlin-keeps-wall-clock", test_daylight_saving_berlin);
  g_test_add_func ("/hours/add-open-time/over-weekend", test_add_open_time_over_weekend);
  g_test_add_func ("/hours/search/bounded-to-400-days", test_search_window);
  g_test_add_func ("/hours/invalid/names-the-key", test_invalid);
  g_test_add_func ("/hours/valid/spacing-and-trailing-separators", test_valid_variants);
  g_test_add_func ("/hours/threads/shared-read-only", test_shared_between_threads);
  return g_test_run ();
}
