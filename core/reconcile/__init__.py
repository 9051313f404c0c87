"""Duplicate-client reconciliation (issue 20 part 5): find clients of one practice who
are likely one person (candidates.py blocks, score.py scores), keep the pairs found
(repository.py: ids, score and reason codes, never a value) and merge or undo a merge
(merge.py)."""
