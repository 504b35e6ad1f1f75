"""English function words and chat fillers that never make a keyword."""
from __future__ import annotations

_WORDS = """
a about above after again against all almost also am an and any anyone anything are aren't around as
at be because been before being below between both but by can can't cannot could couldn't did didn't
do does doesn't doing don't done down during each either else enough etc even ever every few for from
further get gets getting go goes going got had hadn't has hasn't have haven't having he he'd he'll
he's her here here's hers herself him himself his how how's however i i'd i'll i'm i've if in into is
isn't it it's its itself just let let's like likely lot lots made make makes many may maybe me might
mine more most much must mustn't my myself need needs no nor not nothing now of off often oh ok okay on
once one only or other others ought our ours ourselves out over own per perhaps please quite rather
really right said same say says see seem seems shall shan't she she'd she'll she's should shouldn't
since so some something sometimes soon still such sure take than thank thanks that that's the their
theirs them themselves then there there's these they they'd they'll they're they've thing things think
this those though through thus to too toward under until up upon us use used using very via want wants
was wasn't way we we'd we'll we're we've well were weren't what what's whatever when when's where
where's whether which while who who's whom whose why why's will with within without won't would
wouldn't yeah yes yet you you'd you'll you're you've your yours yourself yourselves hi hello hey great
good sounds awesome sorry also actually definitely probably especially certainly specific specifically
help helpful tips ideas suggestions recommend recommendations know tell give great here's absolutely
next last yesterday today tomorrow tonight week weeks month months year years ago day days
"""

STOPWORDS: frozenset[str] = frozenset(w.replace("’", "'") for w in _WORDS.split())
