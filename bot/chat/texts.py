"""Every user-facing text, one catalogue per language."""

from __future__ import annotations

from typing import Any

LANGUAGES = ("en", "zh")

EN: dict[str, str] = {
    "start": (
        "👋 Hi! I turn a photo into a short AI video with Kling.\n\n"
        "Send me a photo with a caption that describes the motion, for example:\n"
        "<i>the cat slowly turns its head and blinks</i>\n\n"
        "You will get a draft with buttons for duration, sound and model, then tap "
        "<b>Generate</b>. /status shows your videos, /help explains more."
    ),
    "help": (
        "<b>How it works</b>\n"
        "1. Send a photo (or an image file) with a caption: the caption is the prompt.\n"
        "   No caption? I will ask for one.\n"
        "2. In the draft choose the length (<b>5s</b>, <b>10s</b>; 3–15 s on Kling 3.0), "
        "<b>Sound</b> (models with sound), "
        "and the model.\n"
        "3. Tap <b>Generate</b>. It takes a few minutes; I send the video as a reply "
        "to your photo.\n\n"
        "<b>More control</b>\n"
        "• Things to avoid: add a line <code>--no blurry, text</code> to the caption.\n"
        "• Prompt strength: <code>--cfg 0.7</code> (0–1, models that take it).\n"
        "• End frame: send an album of two photos — the first starts the video, "
        "the second ends it.\n"
        "• Reference images: an album of 2–4 photos (Kling 1.6).\n"
        "• Camera moves (zoom, pan, tilt…): the 🎥 button, on models that have it.\n"
        "• Several shots (Kling 3.0): write the caption as numbered lines "
        "(<code>1. …</code> <code>2. …</code>), one shot a line.\n\n"
        "/status — your recent videos\n/settings — your default options and language\n"
        "/cancel — drop the open draft\n/help — this text"
    ),
    "commands.start": "Start and see an example",
    "commands.help": "How to make a video",
    "commands.status": "Your recent videos",
    "commands.settings": "Your default options and language",
    "commands.cancel": "Drop the open draft",
    "commands.balance": "Provider balances (admins)",
    "commands.stats": "Usage statistics (admins)",
    "settings.title": "⚙️ <b>Your defaults</b> for new drafts",
    "settings.body": "<b>Model:</b> {model} · <b>{duration} s</b>{extras}\n<b>Language:</b> {language}",
    "settings.hint": "Tap to change. Every new photo starts with these.",
    "settings.choose_model": "Choose your default model:",
    "language.en": "English",
    "language.zh": "中文",
    "cancel.done": "✖️ Draft cancelled. Send another photo whenever you like.",
    "cancel.none": "There is no open draft to cancel.",
    "list.page": "Page {page} of {pages}",
    "btn.prev": "◀️",
    "btn.next": "▶️",
    "btn.refresh": "🔄 #{id}",
    "btn.again": "🔁 #{id}",
    "btn.video_again": "🔁 Again",
    "btn.video_new": "🖼 New prompt, same photo",
    "answer.refreshed": "Up to date",
    "answer.new_draft": "Your draft is below",
    "admin.only": "This command is for the bot's admins.",
    "balance.title": "<b>Balances</b>",
    "balance.line": "• {backend}: {text}",
    "balance.error": "• {backend}: ⚠️ {error}",
    "stats.title": "<b>Statistics</b>",
    "stats.by_state": "<b>By state:</b> {items}",
    "stats.by_model": "<b>By model:</b> {items}",
    "stats.by_day": "<b>By day (UTC, last 7):</b> {items}",
    "stats.failures": "<b>Recent failures:</b>",
    "stats.failure": "• #{id} · {model} · {age}: {reason}",
    "stats.none": "none",
    "stats.undelivered": "<b>Videos not delivered yet</b> (being sent, or refused by Telegram: tried again at the next start):",
    "stats.undelivered_item": "• #{id} · {model} · {age}",
    "elapsed.under_a_minute": "less than a minute",
    "elapsed.minutes": "{m} min",
    "status.running_for": "🎬 Task #{id} is generating… {elapsed} so far. I will send the video when it is ready.",
    "draft.preview_note": "🆓 <b>Free preview:</b> a slow zoom over your photo, made right here — not an AI video. The bot's owner can add a Kling backend for real ones.",
    "video.unavailable": "✅ The video of task #{id} is ready, but I could not send it here. Please try again later.",
    "draft.title": "🎬 <b>Your video draft</b>",
    "draft.prompt": "<b>Prompt:</b> {prompt}",
    "draft.options": "<b>Model:</b> {model} · <b>{duration} s</b>{extras}",
    "draft.sound_on": " · 🔊 sound",
    "draft.sound_off": " · 🔇 no sound",
    "draft.hint": "Adjust the options, then tap <b>Generate</b>.",
    "draft.choose_model": "Choose a model:",
    "draft.cancelled": "✖️ Draft cancelled. Send another photo whenever you like.",
    "btn.duration": "{seconds}s",
    "btn.sound_on": "🔊 Sound: on",
    "btn.sound_off": "🔇 Sound: off",
    "btn.model": "🎞 {model}",
    "btn.generate": "✨ Generate",
    "btn.cancel": "✖️ Cancel",
    "btn.back": "« Back",
    "btn.retry": "🔁 Retry",
    "btn.trim": "✂️ Trim the prompt to {limit} characters",
    "ask_prompt": (
        "Nice photo! Now send me the prompt: describe what should move and how "
        "(for example <i>waves roll in, the camera slowly pushes forward</i>)."
    ),
    "need_photo": (
        "Send me a photo with a caption describing the motion, and I will turn it into a video."
    ),
    "not_image": (
        "That is not an image I can use. Please send a photo (JPEG, PNG or WebP) with a caption "
        "describing the motion."
    ),
    "animation": (
        "That is a GIF or another animation, not an image I can use. Please send a still photo "
        "(JPEG, PNG or WebP)."
    ),
    "too_small": "This image is too small to animate. Please send one at least {smallest} px on its shorter side.",
    "bad_shape": "This image is too long and narrow to animate: I can use shapes up to {longest}:1. Please crop it and send it again.",
    "image_too_large": "This image has too many pixels for me to handle. Please send it as a photo rather than as a file, or send a smaller version.",
    "fetch_failed": "I could not fetch that file from Telegram. Please send it again.",
    "unknown_command": "I do not know that command. /help shows what I can do.",
    "reason.image_too_small": "the image is too small (under {smallest} px on a side).",
    "reason.image_shape": "the image is too long and narrow (more than {longest}:1).",
    "reason.image_too_large": "the image has too many pixels to handle. Please send it as a photo rather than as a file.",
    "reason.image_animated": "the file is an animation, not a still photo.",
    "file_too_big": "That file is too big for me to fetch (over 20 MB). Please send a smaller image.",
    "prompt_too_long": (
        "Your prompt has {length} characters, but {model} accepts at most {limit}. "
        "Shorten it, trim it with the ✂️ button, or pick another model."
    ),
    "negative_too_long": (
        "Your negative prompt has {length} characters, but {model} accepts at most {limit}."
    ),
    "shot_too_long": (
        "Shot {index} has {length} characters, but {model} takes at most {limit} a shot. "
        "Shorten it, or make the lines one shot with the 🎬 button."
    ),
    "draft.shots_too_many": "🎬 {model} makes at most {most} shots: your {count} lines go as one prompt.",
    "draft.shots_not_now": "🎬 Your {count} lines go as one prompt: {model} makes no several shots with an end frame.",
    "draft.shots_elsewhere": "🎬 {model} can make your {count} lines {count} shots: choose it with 🎞.",
    "draft.negative": "<b>Avoid:</b> {negative}",
    "draft.mode": " · {mode}",
    "draft.cfg": " · cfg {cfg}",
    "draft.images.end_frame": "🖼 <b>{count} photos:</b> the first starts the video, the second ends it",
    "draft.images.references": "🖼 <b>{count} photos</b> as references for one scene",
    "draft.images.single": "🖼 Only the first of your {count} photos is used",
    "draft.camera": "🎥 <b>Camera:</b> {camera}",
    "draft.needs": "ℹ️ {model} makes {feature} only {needs}, so that is chosen.",
    "draft.excludes": "ℹ️ {model} cannot combine {feature} with {other}, so that is off.",
    "needs.mode": "in {mode} mode",
    "needs.duration": "at {seconds} s",
    "feature.end_frame": "an end frame",
    "feature.camera": "camera moves",
    "feature.sound": "sound",
    "feature.motion_brush": "the motion brush",
    "feature.multi_shot": "several shots",
    "draft.choose_camera": "Choose a camera move:",
    "btn.mode": "⚙️ Mode: {mode}",
    "btn.cfg": "🎚 CFG {cfg}",
    "btn.images.end_frame": "🖼 Photos: start → end",
    "btn.images.references": "🖼 Photos: references",
    "btn.images.single": "🖼 Photos: first only",
    "btn.shots_on": "🎬 {count} shots",
    "btn.shots_off": "🎬 One shot",
    "draft.shots": "🎬 <b>{count} shots</b> in one video:",
    "draft.shot": "{index}. {prompt} <i>({seconds} s)</i>",
    "draft.shots_off": "🎬 Your {count} lines go as one shot; the 🎬 button makes them {count} shots.",
    "btn.camera": "🎥 Camera: {camera} ▾",
    "btn.no_camera": "No camera move",
    "camera.none": "none",
    "camera.zoom_in": "Zoom in",
    "camera.zoom_out": "Zoom out",
    "camera.pan_left": "Pan left",
    "camera.pan_right": "Pan right",
    "camera.tilt_up": "Tilt up",
    "camera.tilt_down": "Tilt down",
    "camera.down_back": "Down and back",
    "camera.forward_up": "Forward and up",
    "camera.right_turn_forward": "Turn right, forward",
    "camera.left_turn_forward": "Turn left, forward",
    "mode.std": "standard",
    "mode.pro": "pro",
    "mode.4K": "4K",
    "mode.720p": "720p",
    "mode.1080p": "1080p",
    "answer.updated": "Updated",
    "answer.starting": "Starting…",
    "answer.gone": "This draft is no longer available. Send a new photo.",
    "answer.not_yours": "This draft belongs to someone else.",
    "answer.submitted": "This draft is already being generated.",
    "answer.unknown": "This button is no longer valid.",
    "answer.cancelled": "Cancelled",
    "answer.retrying": "Trying again…",
    "answer.retried": "This task was already tried again.",
    "answer.trimmed": "Prompt trimmed",
    "answer.active_limit": "You already have {limit} videos in progress. Wait for one to finish, then tap Generate again.",
    "answer.daily_limit": "You have made {limit} videos in the last 24 hours, the most allowed. Please try again later.",
    "answer.private": "Sorry, this bot is private.",
    "private": "Sorry, this bot is private: it only works for the people its owner allowed.",
    "status.submitting": "⏳ Uploading your photo and starting the task…",
    "status.waiting": "⏳ Task #{id} is queued here: {backend} takes only so many new tasks at a time ({ahead} ahead of yours). It starts by itself.",
    "status.adopted": "👍 Good news: task #{id} did start at the video service after all. I will send the video here as soon as it is ready; there is no need to try again.",
    "status.adopted_retried": "👍 Task #{id} did start at the video service after all, so its video comes here too, besides the one from your retry (#{retry}).",
    "status.queued": "⏳ Task #{id} is queued at the provider. I will send the video when it is ready.",
    "status.running": "🎬 Task #{id} is generating… I will send the video when it is ready.",
    "eta.left": "⏱ About {left} left.",
    "eta.soon": "⏱ Should be ready any moment.",
    "eta.late": "⏱ Taking longer than usual; still waiting for it.",
    "eta.usually": "⏱ Usually takes {low}–{high}.",
    "eta.usually_about": "⏱ Usually takes about {left}.",
    "span.seconds": "{n} s",
    "span.minutes": "{n} min",
    "status.succeeded": "📤 Task #{id} is ready, sending the video…",
    "status.delivering": "📤 Task #{id} is ready, sending the video…",
    "status.delivered": "✅ Task #{id} is done: the video is below.",
    "status.failed": "❌ Task #{id} failed: {reason}",
    "status.summary": "{model} · {duration} s{sound}\n<i>{prompt}</i>",
    "reason.auth": "the video service refused the bot's key. No credits were used.",
    "admin.alert": "⚠️ <b>{backend}</b> needs you: {reason}",
    "admin.auth": "it refused the bot's key. Check the key in the configuration. Users are told it failed; nothing was paid.",
    "admin.no_credits": "the account has no credits left. Top it up. Users are told it failed; nothing was paid.",
    "admin.key_limit": "the key reached the spending limit set for it. Raise the limit or use another key. Users are told it failed; nothing was paid.",
    "admin.blocked": "its firewall (Cloudflare 1010) refuses this server, not the key. Check the server's IP address and User-Agent. Users are told it failed; nothing was paid.",
    "admin.keeps_failing": "{count} tasks in a row failed on its side (the last: see below). Check the service's status page and the bot's log.",
    "reason.owner_told": "The bot's owner has been told.",
    "reason.tell_owner": "Please let the bot's owner know.",
    "reason.no_credits": "the video service account has no credits left. No credits were used.",
    "reason.key_limit": (
        "the bot's key for the video service has reached the spending limit its owner set. "
        "No credits were used."
    ),
    "reason.blocked": (
        "the video service's firewall (Cloudflare) turned away the bot's server; the bot's key "
        "was not the problem. No credits were used."
    ),
    "reason.invalid_request": "the video service rejected the request ({detail}).",
    "reason.moderation": "the prompt or the image was rejected by content moderation.",
    "reason.generation_failed": "the video could not be generated: {detail}",
    "reason.busy": "the video service is busy. Please try again in a minute.",
    "reason.bad_callback": "the video service's message about the task could not be verified.",
    "reason.unavailable": "the video service is unavailable right now. Please try again later.",
    "reason.uncertain": (
        "the video service's answer got lost (no answer in time, or a broken one), so the task "
        "may not have started. Check /status in a few minutes before trying again."
    ),
    "reason.not_found": "the video service lost track of the task.",
    "reason.expired": (
        "the video was made, but it could not be sent here in time and the video service "
        "no longer keeps it."
    ),
    "reason.expired_unsure": (
        "the bot restarted while sending the video. If it did not arrive above, it cannot "
        "be sent again: the video service no longer keeps it."
    ),
    "reason.timeout": "it took longer than {minutes} minutes, so I stopped waiting.",
    "reason.image_unreadable": "I could not read the image. Please send it again as a photo.",
    "reason.image_fetch": "I could not fetch your photo from Telegram. Please send it again.",
    "reason.interrupted": (
        "the bot restarted while starting this task, so it may not have started. "
        "Check /status in a few minutes before trying again."
    ),
    "reason.provider_error": "the video service answered with an error ({detail}).",
    "reason.unknown_model": "this model is no longer offered. Please pick another one.",
    "video.caption": "🎬 {prompt}\n\n{model} · {duration} s{sound}",
    "video.too_big": (
        "✅ Your video is ready, but it is too large to send here ({size} MB). "
        "Download it within 24 hours: {url}"
    ),
    "video.too_big_brief": (
        "✅ Your video is ready, but it is too large to send here ({size} MB). "
        "This link works for 20 minutes: {url}"
    ),
    "video.link": "✅ Your video is ready. I could not upload it here; download it: {url}",
    "video.link_brief": (
        "✅ Your video is ready. I could not upload it here; download it within 20 minutes: {url}"
    ),
    "video.resent_link": (
        "✅ The bot restarted while sending your video for task #{id}. "
        "If it did not arrive above, download it here: {url}"
    ),
    "video.resent_link_brief": (
        "✅ The bot restarted while sending your video for task #{id}. "
        "If it did not arrive above, download it here within 20 minutes: {url}"
    ),
    "list.header": "<b>Your videos</b> (newest first):",
    "list.empty": "You have no videos yet. Send me a photo with a caption to make one.",
    "list.item": "{icon} #{id} · {state} · {model} · {duration} s{sound} · {age}\n    <i>{prompt}</i>",
    "state.submitting": "starting",
    "state.queued": "queued",
    "state.running": "generating",
    "state.succeeded": "sending",
    "state.delivering": "sending",
    "state.delivered": "done",
    "state.undelivered": "not delivered yet",
    "state.failed": "failed",
    "age.seconds": "{n} s ago",
    "age.minutes": "{n} min ago",
    "age.hours": "{n} h ago",
    "age.days": "{n} d ago",
    "error.generic": "Sorry, something went wrong on my side. Please try again.",
}

ZH: dict[str, str] = {
    "start": (
        "👋 你好！我可以用可灵（Kling）把一张照片变成一段 AI 短视频。\n\n"
        "发送一张照片，并在图片说明里描述你想要的动作，例如：\n"
        "<i>小猫慢慢转头并眨眼</i>\n\n"
        "我会回复一个草稿，你可以用按钮选择时长、声音和模型，然后点 <b>生成</b>。"
        "/status 查看你的视频，/help 查看说明。"
    ),
    "help": (
        "<b>使用方法</b>\n"
        "1. 发送一张照片（或图片文件），图片说明就是提示词。\n"
        "   没有说明？我会请你补充。\n"
        "2. 在草稿中选择时长（<b>5秒</b>、<b>10秒</b>；Kling 3.0 可选 3–15 秒）、<b>声音</b>（支持声音的模型）以及模型。\n"
        "3. 点 <b>生成</b>。生成需要几分钟，完成后我会回复在你的照片下。\n\n"
        "<b>更多控制</b>\n"
        "• 不想出现的内容：在说明中加一行 <code>--no 模糊, 文字</code>（或 <code>反向：模糊</code>）。\n"
        "• 提示词强度：<code>--cfg 0.7</code>（0–1，部分模型支持）。\n"
        "• 尾帧：发送两张照片的相册，第一张作为开头，第二张作为结尾。\n"
        "• 参考图：发送 2–4 张照片的相册（Kling 1.6）。\n"
        "• 运镜（推近、摇、俯仰…）：支持的模型可用 🎥 按钮。\n"
        "• 多镜头（Kling 3.0）：把说明写成编号的多行（<code>1. …</code> <code>2. …</code>），每行一个镜头。\n\n"
        "/status — 最近的视频\n/settings — 默认选项和语言\n/cancel — 取消当前草稿\n/help — 本说明"
    ),
    "commands.start": "开始并查看示例",
    "commands.help": "如何制作视频",
    "commands.status": "最近的视频",
    "commands.settings": "默认选项和语言",
    "commands.cancel": "取消当前草稿",
    "commands.balance": "服务余额（管理员）",
    "commands.stats": "使用统计（管理员）",
    "settings.title": "⚙️ <b>新草稿的默认设置</b>",
    "settings.body": "<b>模型：</b>{model} · <b>{duration} 秒</b>{extras}\n<b>语言：</b>{language}",
    "settings.hint": "点按钮修改。之后发送的照片都会使用这些设置。",
    "settings.choose_model": "选择默认模型：",
    "language.en": "English",
    "language.zh": "中文",
    "cancel.done": "✖️ 草稿已取消。随时可以再发一张照片。",
    "cancel.none": "没有可以取消的草稿。",
    "list.page": "第 {page} 页，共 {pages} 页",
    "btn.prev": "◀️",
    "btn.next": "▶️",
    "btn.refresh": "🔄 #{id}",
    "btn.again": "🔁 #{id}",
    "btn.video_again": "🔁 再来一次",
    "btn.video_new": "🖼 同一张照片，新提示词",
    "answer.refreshed": "已是最新",
    "answer.new_draft": "草稿在下方",
    "admin.only": "这个命令仅供机器人管理员使用。",
    "balance.title": "<b>余额</b>",
    "balance.line": "• {backend}：{text}",
    "balance.error": "• {backend}：⚠️ {error}",
    "stats.title": "<b>统计</b>",
    "stats.by_state": "<b>按状态：</b>{items}",
    "stats.by_model": "<b>按模型：</b>{items}",
    "stats.by_day": "<b>按日期（UTC，最近 7 天）：</b>{items}",
    "stats.failures": "<b>最近的失败：</b>",
    "stats.failure": "• #{id} · {model} · {age}：{reason}",
    "stats.none": "无",
    "stats.undelivered": "<b>尚未送达的视频</b>（正在发送，或被 Telegram 拒绝：下次启动时会重试）：",
    "stats.undelivered_item": "• #{id} · {model} · {age}",
    "elapsed.under_a_minute": "不到 1 分钟",
    "elapsed.minutes": "{m} 分钟",
    "status.running_for": "🎬 任务 #{id} 正在生成…已用时 {elapsed}。视频完成后我会发给你。",
    "draft.preview_note": "🆓 <b>免费预览：</b>在本机为你的照片做一个缓慢推近的效果，不是 AI 视频。机器人所有者可以接入 Kling 来生成真正的 AI 视频。",
    "video.unavailable": "✅ 任务 #{id} 的视频已完成，但无法发送到这里。请稍后再试。",
    "draft.title": "🎬 <b>视频草稿</b>",
    "draft.prompt": "<b>提示词：</b>{prompt}",
    "draft.options": "<b>模型：</b>{model} · <b>{duration} 秒</b>{extras}",
    "draft.sound_on": " · 🔊 有声音",
    "draft.sound_off": " · 🔇 无声音",
    "draft.hint": "调整选项后点 <b>生成</b>。",
    "draft.choose_model": "选择模型：",
    "draft.cancelled": "✖️ 草稿已取消。随时可以再发一张照片。",
    "btn.duration": "{seconds}秒",
    "btn.sound_on": "🔊 声音：开",
    "btn.sound_off": "🔇 声音：关",
    "btn.model": "🎞 {model}",
    "btn.generate": "✨ 生成",
    "btn.cancel": "✖️ 取消",
    "btn.back": "« 返回",
    "btn.retry": "🔁 重试",
    "btn.trim": "✂️ 把提示词截短到 {limit} 个字符",
    "ask_prompt": (
        "照片收到了！请发送提示词，描述画面中什么在动、怎么动"
        "（例如 <i>海浪涌来，镜头缓缓推进</i>）。"
    ),
    "need_photo": "请发送一张照片，并在图片说明里描述想要的动作，我会把它变成视频。",
    "not_image": "这不是我能使用的图片。请发送一张照片（JPEG、PNG 或 WebP），并在图片说明里描述想要的动作。",
    "animation": "这是 GIF 或其他动图，不是我能使用的图片。请发送一张静态照片（JPEG、PNG 或 WebP）。",
    "too_small": "这张图片太小了，无法生成视频。请发送短边至少 {smallest} 像素的图片。",
    "bad_shape": "这张图片太细长了，无法生成视频：我最多能处理 {longest}:1 的比例。请裁剪后重新发送。",
    "image_too_large": "这张图片的像素太多，我无法处理。请以照片（而不是文件）形式发送，或发送更小的版本。",
    "fetch_failed": "无法从 Telegram 获取这个文件，请重新发送。",
    "unknown_command": "我不认识这个命令。/help 可以查看我能做什么。",
    "reason.image_too_small": "图片太小（某一边不足 {smallest} 像素）。",
    "reason.image_shape": "图片太细长（超过 {longest}:1）。",
    "reason.image_too_large": "图片的像素太多，无法处理。请以照片（而不是文件）形式发送。",
    "reason.image_animated": "文件是动图，不是静态照片。",
    "file_too_big": "这个文件太大了（超过 20 MB），我无法获取。请发送更小的图片。",
    "prompt_too_long": (
        "你的提示词有 {length} 个字符，但 {model} 最多接受 {limit} 个。请缩短提示词、用 ✂️ 按钮截短，或换一个模型。"
    ),
    "negative_too_long": "你的反向提示词有 {length} 个字符，但 {model} 最多接受 {limit} 个。",
    "shot_too_long": "第 {index} 个镜头有 {length} 个字符，但 {model} 每个镜头最多 {limit} 个。请缩短，或用 🎬 按钮改为单镜头。",
    "draft.shots_too_many": "🎬 {model} 最多支持 {most} 个镜头：你的 {count} 行作为一个提示词。",
    "draft.shots_not_now": "🎬 你的 {count} 行作为一个提示词：{model} 在使用尾帧时不能分多个镜头。",
    "draft.shots_elsewhere": "🎬 {model} 可以把你的 {count} 行做成 {count} 个镜头：用 🎞 选择它。",
    "draft.negative": "<b>避免：</b>{negative}",
    "draft.mode": " · {mode}",
    "draft.cfg": " · cfg {cfg}",
    "draft.images.end_frame": "🖼 <b>{count} 张照片：</b>第一张作为开头，第二张作为结尾",
    "draft.images.references": "🖼 <b>{count} 张照片</b>作为同一场景的参考图",
    "draft.images.single": "🖼 {count} 张照片中只使用第一张",
    "draft.camera": "🎥 <b>运镜：</b>{camera}",
    "draft.needs": "ℹ️ {model} 的{feature}仅支持{needs}，已为你选好。",
    "draft.excludes": "ℹ️ {model} 的{feature}不能与{other}同时使用，{other}已关闭。",
    "needs.mode": "{mode}模式",
    "needs.duration": " {seconds} 秒",
    "feature.end_frame": "尾帧",
    "feature.camera": "运镜",
    "feature.sound": "声音",
    "feature.motion_brush": "运动笔刷",
    "feature.multi_shot": "多镜头",
    "draft.choose_camera": "选择运镜方式：",
    "btn.mode": "⚙️ 模式：{mode}",
    "btn.cfg": "🎚 CFG {cfg}",
    "btn.images.end_frame": "🖼 照片：首帧 → 尾帧",
    "btn.images.references": "🖼 照片：参考图",
    "btn.images.single": "🖼 照片：只用第一张",
    "btn.shots_on": "🎬 {count} 个镜头",
    "btn.shots_off": "🎬 单镜头",
    "draft.shots": "🎬 <b>一个视频，{count} 个镜头：</b>",
    "draft.shot": "{index}. {prompt} <i>（{seconds} 秒）</i>",
    "draft.shots_off": "🎬 你的 {count} 行提示词作为一个镜头；点 🎬 按钮可分成 {count} 个镜头。",
    "btn.camera": "🎥 运镜：{camera} ▾",
    "btn.no_camera": "不使用运镜",
    "camera.none": "无",
    "camera.zoom_in": "推近",
    "camera.zoom_out": "拉远",
    "camera.pan_left": "向左摇",
    "camera.pan_right": "向右摇",
    "camera.tilt_up": "向上仰",
    "camera.tilt_down": "向下俯",
    "camera.down_back": "下移后拉",
    "camera.forward_up": "前推上升",
    "camera.right_turn_forward": "右转前推",
    "camera.left_turn_forward": "左转前推",
    "mode.std": "标准",
    "mode.pro": "高品质",
    "mode.4K": "4K",
    "mode.720p": "720p",
    "mode.1080p": "1080p",
    "answer.updated": "已更新",
    "answer.starting": "正在开始…",
    "answer.gone": "这个草稿已失效，请重新发送照片。",
    "answer.not_yours": "这个草稿属于其他用户。",
    "answer.submitted": "这个草稿已经在生成中。",
    "answer.unknown": "这个按钮已失效。",
    "answer.cancelled": "已取消",
    "answer.retrying": "正在重试…",
    "answer.retried": "这个任务已经重试过了。",
    "answer.trimmed": "提示词已截短",
    "answer.active_limit": "你已有 {limit} 个视频正在生成。请等其中一个完成后再点生成。",
    "answer.daily_limit": "你在 24 小时内已制作了 {limit} 个视频，已达上限。请稍后再试。",
    "answer.private": "抱歉，这是私人机器人。",
    "private": "抱歉，这是私人机器人，只对所有者允许的用户开放。",
    "status.submitting": "⏳ 正在上传照片并创建任务…",
    "status.waiting": "⏳ 任务 #{id} 正在本地排队：{backend} 限制了同时创建的任务数（前面还有 {ahead} 个）。轮到时会自动开始。",
    "status.adopted": "👍 好消息：任务 #{id} 其实已经在视频服务开始了。视频一完成就会发到这里，无需重试。",
    "status.adopted_retried": "👍 任务 #{id} 其实已经在视频服务开始了，所以除了你重试的任务（#{retry}）之外，它的视频也会发到这里。",
    "status.queued": "⏳ 任务 #{id} 正在排队，视频完成后我会发给你。",
    "status.running": "🎬 任务 #{id} 正在生成…视频完成后我会发给你。",
    "eta.left": "⏱ 预计还需约 {left}。",
    "eta.soon": "⏱ 马上就好。",
    "eta.late": "⏱ 这次比平时慢，仍在等待。",
    "eta.usually": "⏱ 通常需要 {low}–{high}。",
    "eta.usually_about": "⏱ 通常需要约 {left}。",
    "span.seconds": "{n} 秒",
    "span.minutes": "{n} 分钟",
    "status.succeeded": "📤 任务 #{id} 已完成，正在发送视频…",
    "status.delivering": "📤 任务 #{id} 已完成，正在发送视频…",
    "status.delivered": "✅ 任务 #{id} 已完成，视频在下方。",
    "status.failed": "❌ 任务 #{id} 失败：{reason}",
    "status.summary": "{model} · {duration} 秒{sound}\n<i>{prompt}</i>",
    "reason.auth": "视频服务拒绝了机器人的密钥，本次未扣费。",
    "admin.alert": "⚠️ <b>{backend}</b> 需要处理：{reason}",
    "admin.auth": "它拒绝了机器人的密钥。请检查配置中的密钥。用户已收到失败通知，未扣费。",
    "admin.no_credits": "账户余额已用完。请充值。用户已收到失败通知，未扣费。",
    "admin.key_limit": "该密钥已达到为它设定的消费上限。请提高上限或换一个密钥。用户已收到失败通知，未扣费。",
    "admin.blocked": "它的防火墙（Cloudflare 1010）拒绝了本服务器，而不是密钥。请检查服务器的 IP 地址和 User-Agent。用户已收到失败通知，未扣费。",
    "admin.keeps_failing": "连续 {count} 个任务因服务方的问题失败（最后一个见下方）。请查看服务的状态页和机器人的日志。",
    "reason.owner_told": "已通知机器人管理员。",
    "reason.tell_owner": "请告知机器人管理员。",
    "reason.no_credits": "视频服务账户余额不足，本次未扣费。",
    "reason.key_limit": "机器人在视频服务的密钥已达到所有者设定的消费上限，本次未扣费。",
    "reason.blocked": "视频服务的防火墙（Cloudflare）拒绝了机器人的服务器，并非密钥问题，本次未扣费。",
    "reason.invalid_request": "视频服务拒绝了请求（{detail}）。",
    "reason.moderation": "提示词或图片未通过内容审核。",
    "reason.generation_failed": "视频生成失败：{detail}",
    "reason.busy": "视频服务繁忙，请一分钟后再试。",
    "reason.bad_callback": "无法核实视频服务关于此任务的消息。",
    "reason.unavailable": "视频服务暂时不可用，请稍后再试。",
    "reason.uncertain": "视频服务的响应丢失了（超时或响应不完整），任务可能没有开始。请过几分钟查看 /status 后再重试。",
    "reason.not_found": "视频服务找不到这个任务。",
    "reason.expired": "视频已经生成，但没能及时发送到这里，视频服务已不再保存它。",
    "reason.expired_unsure": "发送视频时机器人重启了。如果上方没有收到视频，它已无法再次发送：视频服务已不再保存它。",
    "reason.timeout": "生成超过了 {minutes} 分钟，已停止等待。",
    "reason.image_unreadable": "无法读取这张图片，请以照片形式重新发送。",
    "reason.image_fetch": "无法从 Telegram 获取你的照片，请重新发送。",
    "reason.interrupted": "创建任务时机器人重启了，任务可能没有开始。请过几分钟查看 /status 后再重试。",
    "reason.provider_error": "视频服务返回了错误（{detail}）。",
    "reason.unknown_model": "这个模型已不再提供，请选择其他模型。",
    "video.caption": "🎬 {prompt}\n\n{model} · {duration} 秒{sound}",
    "video.too_big": "✅ 视频已完成，但文件太大（{size} MB），无法在这里发送。请在 24 小时内下载：{url}",
    "video.too_big_brief": "✅ 视频已完成，但文件太大（{size} MB），无法在这里发送。此链接 20 分钟内有效：{url}",
    "video.link": "✅ 视频已完成，但无法上传到这里，请下载：{url}",
    "video.link_brief": "✅ 视频已完成，但无法上传到这里，请在 20 分钟内下载：{url}",
    "video.resent_link": "✅ 发送任务 #{id} 的视频时机器人重启了。如果上方没有收到视频，请在这里下载：{url}",
    "video.resent_link_brief": "✅ 发送任务 #{id} 的视频时机器人重启了。如果上方没有收到视频，请在 20 分钟内从这里下载：{url}",
    "list.header": "<b>你的视频</b>（最新的在前）：",
    "list.empty": "你还没有视频。发送一张带说明的照片来制作第一个吧。",
    "list.item": "{icon} #{id} · {state} · {model} · {duration} 秒{sound} · {age}\n    <i>{prompt}</i>",
    "state.submitting": "正在开始",
    "state.queued": "排队中",
    "state.running": "生成中",
    "state.succeeded": "发送中",
    "state.delivering": "发送中",
    "state.delivered": "已完成",
    "state.undelivered": "尚未送达",
    "state.failed": "失败",
    "age.seconds": "{n} 秒前",
    "age.minutes": "{n} 分钟前",
    "age.hours": "{n} 小时前",
    "age.days": "{n} 天前",
    "error.generic": "抱歉，我这边出了点问题，请再试一次。",
}

CATALOGUES = {"en": EN, "zh": ZH}


def language_of(language_code: str | None) -> str:
    """Our language for a Telegram `language_code`: Chinese for `zh*`, else English."""
    return "zh" if language_code and language_code.lower().startswith("zh") else "en"


def t(lang: str, key: str, **values: Any) -> str:
    """The text `key` in `lang` (English as fallback), filled with `values`."""
    template = CATALOGUES.get(lang, EN).get(key) or EN[key]
    return template.format(**values) if values else template
