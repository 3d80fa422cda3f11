"""``/admin``: the administrators' pages to list, invite, reset and remove guests (HTML, no JavaScript)."""
