"""Multi-factor authentication done here, at the resource organisation: TOTP (RFC 6238).

Owns the code arithmetic (``totp``), the methods kept on a user record and the artefacts that
guard them — enrolment secrets, replay markers, attempt slots (``methods``) — and the otpauth URI
with its QR code (``qr``). It knows nothing of HTTP: the sign-in pages live in
``gateway.signin.mfa_pages``, the admin reset path in ``gateway.admin.auth_methods``.
"""
