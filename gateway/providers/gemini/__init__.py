"""Gemini channels (`kind: gemini`): Google's native `generateContent` API, for chat and images."""
