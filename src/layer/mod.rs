//! Tower layers that act on verdicts.
