"""Need to know: one access policy for every call of every service (`policy`, `table`), the
facts it decides on (`facts`) and its enforcement with the audit (`enforce`)."""
