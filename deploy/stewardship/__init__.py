"""Stewardship: the review queue and stewards' decisions (``tipsync review``)."""
