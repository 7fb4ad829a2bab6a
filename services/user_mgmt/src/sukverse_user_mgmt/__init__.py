"""The user management service: profiles kept in step with auth, and bulk administration."""
