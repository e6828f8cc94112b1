"""The pipeline's pure domain: plain functions over plain types, no I/O, no boto3, no Django.

- ``message``: the bike message, its limits (``MAX_ID``, ...) and its one decoder, whose errors name the reason;
- ``scoring``: the scoring formula (``output_of``) and exact score units;
- ``schedule``: a race's identity (A0) and the checks of a record against it;
- ``window``: the aggregator's tumbling-window state and how readings fold into it;
- ``standings``: racers' running totals, how a window merges into them, and the ranking rule.
"""
