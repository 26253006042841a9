"""The reviewers' inbox: threads waiting for a human (approvals, reviews, escalations), per tenant."""
