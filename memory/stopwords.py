"""Stopword lists: English function words (for BM25 and keywords) and chat fillers (keywords only)."""
from __future__ import annotations

_ENGLISH = """
a about above after again against all am an and any are aren't as at be because been before being
below between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down
during each few for from further had hadn't has hasn't have haven't having he he'd he'll he's her here
here's hers herself him himself his how how's i i'd i'll i'm i've if in into is isn't it it's its
itself let's me more most mustn't my myself no nor not of off on once only or other ought our ours
ourselves out over own same shan't she she'd she'll she's should shouldn't so some such than that
that's the their theirs them themselves then there there's these they they'd they'll they're they've
this those through to too under until up very was wasn't we we'd we'll we're we've were weren't what
what's when when's where where's which while who who's whom why why's will with won't would wouldn't
you you'd you'll you're you've your yours yourself yourselves
"""

_CHAT = """
almost also anyone anything around either else enough etc even ever every get gets getting go goes
going got however just let like likely lot lots made make makes many may maybe might mine much must
need needs nothing now oh ok okay often one others per perhaps please quite rather really right said
say says see seem seems shall since something sometimes soon still sure take thank thanks thing things
think though thus toward upon us use used using via want wants way well whatever whether within
without yeah yes yet hi hello hey great good sounds awesome sorry actually definitely probably
especially certainly specific specifically help helpful tips ideas suggestions recommend
recommendations know tell give absolutely
next last yesterday today tomorrow tonight week weeks month months year years ago day days
"""

ENGLISH: frozenset[str] = frozenset(_ENGLISH.split())
STOPWORDS: frozenset[str] = ENGLISH | frozenset(_CHAT.split())
