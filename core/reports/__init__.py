"""Documents Strongroom issues for people to keep: the signed compliance report."""
