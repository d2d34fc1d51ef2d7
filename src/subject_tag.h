/* subject_tag.h - the ticket tag in a subject: "[Ticket#1042]".
 *
 * A queue's tag is "[" PREFIX "#" DIGITS "]", the prefix compared without
 * regard to case and white space allowed inside the brackets ("[ ticket #42 ]").
 * Tags of other systems ("[#1042]", "[rt #5]", "[Other#7]") are not ours and
 * are left alone.
 */
#ifndef TM_SUBJECT_TAG_H
#define TM_SUBJECT_TAG_H

#include <glib.h>

/* The id of the first tag of PREFIX in SUBJECT, or 0 when there is none
 * (or its number does not fit a positive 63-bit integer). */
gint64 tm_subject_tag_find (const char *subject, const char *prefix);

/* SUBJECT with every tag of PREFIX removed and "[PREFIX#ID] " in front, white
 * space tidied where a tag was cut out: the tag appears exactly once whatever
 * the mail carried ("Re: [Ticket#1] Re: [Ticket#1] x" -> "[Ticket#1] Re: Re: x").
 * Returns a new string. */
char *tm_subject_tag_apply (const char *subject, const char *prefix, gint64 id)
  G_GNUC_WARN_UNUSED_RESULT;

/* TRUE when SUBJECT already carries exactly one tag of PREFIX and it names ID,
 * so that the subject needs no change. */
gboolean tm_subject_tag_is_exactly (const char *subject, const char *prefix,
                                    gint64 id);

#endif
