/* test-subject-tag.c - finding and placing "[Ticket#N]" in subjects. */
#include "subject_tag.h"

static void
test_find (void)
{
  struct { const char *subject; const char *prefix; gint64 id; } cases[] = {
    { "[Ticket#1042] printer on fire", "Ticket", 1042 },
    { "Re: [Ticket#7] hello", "Ticket", 7 },
    { "RE: [ ticket # 12 ] spaced", "Ticket", 12 },
    { "[TICKET#5] shouting", "Ticket", 5 },
    { "[#1042] another system", "Ticket", 0 },
    { "[rt #5] request tracker", "Ticket", 0 },
    { "[Other#7] another desk", "Ticket", 0 },
    { "[Ticket#] no number", "Ticket", 0 },
    { "[Ticket#12x] junk after the number", "Ticket", 0 },
    { "[Ticket#99999999999999999999999] too large", "Ticket", 0 },
    { "[Ticket#3", "Ticket", 0 },
    { "[[Ticket#9]] doubled brackets", "Ticket", 9 },
    { "[#1] [Ticket#4] [Ticket#5]", "Ticket", 4 },
    { "مرحبا [Help#33] فاتورة", "Help", 33 },
    { "[Ticket#1] wrong prefix", "Help", 0 },
    { "", "Ticket", 0 },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      gint64 got = tm_subject_tag_find (cases[i].subject, cases[i].prefix);
      if (got != cases[i].id)
        g_error ("\"%s\": got %" G_GINT64_FORMAT ", want %" G_GINT64_FORMAT,
                 cases[i].subject, got, cases[i].id);
    }
}

static void
test_apply (void)
{
  struct { const char *subject; gint64 id; const char *want; } cases[] = {
    { "printer on fire", 1, "[Ticket#1] printer on fire" },
    { "Re: [Ticket#1] Re: [Ticket#1] x", 1, "[Ticket#1] Re: Re: x" },
    { "Re: [Ticket#999] lost", 4, "[Ticket#4] Re: lost" },
    { "[#1042] [rt #5] hello", 6, "[Ticket#6] [#1042] [rt #5] hello" },
    { "", 3, "[Ticket#3]" },
    { "   ", 3, "[Ticket#3]" },
    { "[Ticket#2]", 2, "[Ticket#2]" },
    { "ends with tag [Ticket#2]", 2, "[Ticket#2] ends with tag" },
    { "a[Ticket#2]b", 2, "[Ticket#2] ab" },
    { "a [Ticket#2] b", 2, "[Ticket#2] a b" },
    { "فاتورة [ticket#8] لم تصل", 8, "[Ticket#8] فاتورة لم تصل" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *got = tm_subject_tag_apply (cases[i].subject, "Ticket", cases[i].id);
      g_assert_cmpstr (got, ==, cases[i].want);
      /* Applying twice changes nothing more: the tag is there exactly once. */
      g_autofree char *again = tm_subject_tag_apply (got, "Ticket", cases[i].id);
      g_assert_cmpstr (again, ==, got);
      g_assert_true (tm_subject_tag_is_exactly (got, "Ticket", cases[i].id));
    }
}

static void
test_is_exactly (void)
{
  g_assert_true (tm_subject_tag_is_exactly ("Re: [Ticket#5] x", "Ticket", 5));
  g_assert_false (tm_subject_tag_is_exactly ("Re: [Ticket#5] x", "Ticket", 6));
  g_assert_false (tm_subject_tag_is_exactly ("[Ticket#5] Re: [Ticket#5] x", "Ticket", 5));
  g_assert_false (tm_subject_tag_is_exactly ("no tag", "Ticket", 5));
  g_assert_false (tm_subject_tag_is_exactly ("[#5] other system", "Ticket", 5));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/subject-tag/find", test_find);
  g_test_add_func ("/subject-tag/apply-exactly-once", test_apply);
  g_test_add_func ("/subject-tag/is-exactly", test_is_exactly);
  return g_test_run ();
}
