// Korean and English through i18next: the catalogs, the language each user chose (kept per user), the switch.
import i18n from "i18next";
import { initReactI18next } from "react-i18next";
import en from "./en.json";
import ko from "./ko.json";

export const LANGUAGES = ["en", "ko"] as const;
export type Language = (typeof LANGUAGES)[number];
export const catalogs: Record<Language, Record<string, unknown>> = { en, ko };

const STORAGE_PREFIX = "mes.language.";

function isLanguage(value: unknown): value is Language {
  return typeof value === "string" && (LANGUAGES as readonly string[]).includes(value);
}

/** The browser's preference when the user never chose: Korean for `ko-*`, English otherwise. */
export function browserLanguage(): Language {
  const preferred = typeof navigator !== "undefined" ? navigator.language : "en";
  return preferred?.toLowerCase().startsWith("ko") ? "ko" : "en";
}

/** The language `username` chose in this browser (kept per user: a shared shop-floor PC serves several). */
export function storedLanguage(username: string | null | undefined): Language | null {
  try {
    const value = window.localStorage.getItem(STORAGE_PREFIX + (username ?? ""));
    return isLanguage(value) ? value : null;
  } catch {
    return null;
  }
}

/** Switch the interface to `language` and remember it for `username`. */
export function chooseLanguage(language: Language, username: string | null | undefined): void {
  try {
    window.localStorage.setItem(STORAGE_PREFIX + (username ?? ""), language);
  } catch {
    // storage disabled: the choice lasts as long as the page
  }
  void i18n.changeLanguage(language);
}

/** Apply the user's stored choice (or the browser's) after login. */
export function applyUserLanguage(username: string | null | undefined): void {
  const language = storedLanguage(username) ?? browserLanguage();
  if (i18n.language !== language) void i18n.changeLanguage(language);
}

void i18n.use(initReactI18next).init({
  resources: { en: { translation: en }, ko: { translation: ko } },
  lng: browserLanguage(),
  fallbackLng: false,
  supportedLngs: [...LANGUAGES],
  interpolation: { escapeValue: false }, // React escapes
  returnNull: false,
  initAsync: false,
});

i18n.on("languageChanged", (language) => {
  if (typeof document !== "undefined") document.documentElement.lang = language;
});

export default i18n;
