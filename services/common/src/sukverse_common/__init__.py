"""The kit every Sukverse service stands on."""
