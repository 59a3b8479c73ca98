// Korean and English through i18next: the catalogs, the language each user chose (stored with the user on the
// server, `GET/PATCH /auth/me`; this browser keeps a copy per user for a kernel without it), the switch.
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

/** The language `username` last chose in this browser (kept per user: a shared shop-floor PC serves several). */
export function storedLanguage(username: string | null | undefined): Language | null {
  try {
    const value = window.localStorage.getItem(STORAGE_PREFIX + (username ?? ""));
    return isLanguage(value) ? value : null;
  } catch {
    return null;
  }
}

/** Switch the interface to `language` and remember it for `username` in this browser (the caller also stores
 *  it with the user on the server: `saveLanguage` in the shell). */
export function chooseLanguage(language: Language, username: string | null | undefined): void {
  try {
    window.localStorage.setItem(STORAGE_PREFIX + (username ?? ""), language);
  } catch {
    // storage disabled: the choice lasts as long as the page
  }
  void i18n.changeLanguage(language);
}

/** The language to show `user` after login: the one stored with the user on the server (`/auth/me`'s
 *  `language`), else the one last chosen in this browser, else the browser's. */
export function userLanguage(user: { name?: string | null; language?: string | null } | null | undefined): Language {
  if (isLanguage(user?.language)) return user.language;
  return storedLanguage(user?.name) ?? browserLanguage();
}

/** Apply `user`'s language (see `userLanguage`) after login, and keep this browser's copy in step with it. */
export function applyUserLanguage(user: { name?: string | null; language?: string | null } | null | undefined): void {
  const language = userLanguage(user);
  if (user?.name && isLanguage(user.language) && storedLanguage(user.name) !== language) {
    try {
      window.localStorage.setItem(STORAGE_PREFIX + user.name, language);
    } catch {
      // storage disabled
    }
  }
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
