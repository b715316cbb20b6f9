"""Replay: a past (or running) session told again for a person, from its journal.

    playback.py       the journal read in order from a seq on, with the names a person reads as of each record, and
                      on as it grows (`--follow`)
    event_words.py    one event in words (`claimed t-3 "Fix login"`)
    story.py          `replay`: each event as one line, the filters that pick events, the state at a point (`--at`)
    timeline.py       `timeline`: one lane per agent across time, as data in bounded memory
    timeline_page.py  that data drawn as one self-contained HTML page

Everything an agent wrote goes through display.py before a person sees it. This `__init__` imports nothing.
"""
